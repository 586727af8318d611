-- Views over the committed Parquet batches. {parts} is the catalog's parts folder; the
-- statements are re-run whenever the catalog is opened from a new location.
CREATE OR REPLACE {temp} VIEW models AS
    SELECT * FROM read_parquet('{parts}/*/models.parquet', union_by_name = true);
CREATE OR REPLACE {temp} VIEW tensors AS
    SELECT * FROM read_parquet('{parts}/*/tensors.parquet', union_by_name = true);
CREATE OR REPLACE {temp} VIEW kinship AS
    SELECT * FROM read_parquet('{parts}/*/kinship.parquet', union_by_name = true);
CREATE OR REPLACE {temp} VIEW edges AS
    SELECT * FROM read_parquet('{parts}/*/edges.parquet', union_by_name = true);
CREATE OR REPLACE {temp} VIEW artifacts AS
    SELECT * FROM read_parquet('{parts}/*/artifacts.parquet', union_by_name = true);
-- The newest indexed revision of each model.
CREATE OR REPLACE {temp} VIEW current_models AS
    SELECT * FROM models
    QUALIFY row_number() OVER (PARTITION BY model_id ORDER BY indexed_at DESC, revision) = 1;
-- Kinship rows of the most recent successful kinship run.
CREATE OR REPLACE {temp} VIEW latest_kinship AS
    SELECT * FROM kinship WHERE run_id = (
        SELECT run_id FROM runs WHERE job = 'kinship' AND status = 'succeeded'
        ORDER BY started_at DESC LIMIT 1);
