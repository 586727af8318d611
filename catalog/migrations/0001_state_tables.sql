-- Small mutable state lives in DuckDB; bulk facts live in immutable Parquet batches.
CREATE TABLE IF NOT EXISTS runs (
    run_id      VARCHAR PRIMARY KEY,
    job         VARCHAR NOT NULL,
    params      JSON,
    started_at  TIMESTAMPTZ NOT NULL,
    finished_at TIMESTAMPTZ,
    status      VARCHAR NOT NULL  -- running | succeeded | failed
);

CREATE TABLE IF NOT EXISTS crawl_state (
    model_id    VARCHAR NOT NULL,
    sha         VARCHAR NOT NULL,
    status      VARCHAR NOT NULL,  -- pending | done | skipped | failed
    attempts    INTEGER NOT NULL DEFAULT 0,
    error       VARCHAR,
    updated_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (model_id, sha)
);

CREATE TABLE IF NOT EXISTS catalog_meta (
    key   VARCHAR PRIMARY KEY,
    value VARCHAR
);
