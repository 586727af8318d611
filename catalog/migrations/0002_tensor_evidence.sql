-- Schema 2: `tensors` gains the recovery evidence of 2-D float matrices (rank_sketch,
-- rank_width, sample, sample_size), so recovery never reads weights.
-- The columns live in Parquet: the catalog publishes a zero-row batch
-- parts/00000002-schema with the version-2 schema when it is opened (store.py,
-- Catalog._upgrade), and the views read every batch with union_by_name, so batches
-- written before read these columns as NULL. Recovery then says, once, which models
-- lack the evidence and how to re-index them. Here the version is recorded.
INSERT OR REPLACE INTO catalog_meta VALUES ('parquet_schema_version', '2');
