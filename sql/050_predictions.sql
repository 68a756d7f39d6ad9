-- The prediction log: every `score` run and every POST /predict appends here (source score,
-- api or replay). One row per (model, version, ticker, as-of date, horizon): re-scoring the
-- same evening with the same version replaces its row instead of duplicating it.
CREATE TABLE IF NOT EXISTS predictions (
    ticker        VARCHAR   NOT NULL,
    as_of_date    DATE      NOT NULL,
    horizon       INTEGER   NOT NULL,
    prediction    DOUBLE    NOT NULL,
    model_name    VARCHAR   NOT NULL,
    model_version VARCHAR   NOT NULL,
    run_id        VARCHAR,
    scored_at     TIMESTAMP NOT NULL,  -- UTC
    source        VARCHAR   NOT NULL CHECK (source IN ('score', 'api', 'replay')),
    PRIMARY KEY (model_name, model_version, ticker, as_of_date, horizon)
);
