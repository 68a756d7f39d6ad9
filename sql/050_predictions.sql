-- The prediction log: every `score` run, replay, cycle and POST /predict appends here. The
-- source is part of the key, so a source replaces only its own rows: re-scoring the same
-- evening with the same version replaces that run's row, while an API call (any client may
-- make one) can never rewrite the track record of `score`, `replay` or `cycle` rows that
-- `monitor` grades. Warehouses made with the key without source are migrated when opened
-- (pipeline/data/warehouse.py).
CREATE TABLE IF NOT EXISTS predictions (
    ticker        VARCHAR   NOT NULL,
    as_of_date    DATE      NOT NULL,
    horizon       INTEGER   NOT NULL,
    prediction    DOUBLE    NOT NULL,
    model_name    VARCHAR   NOT NULL,
    model_version VARCHAR   NOT NULL,
    run_id        VARCHAR,
    scored_at     TIMESTAMP NOT NULL,  -- UTC
    source        VARCHAR   NOT NULL CHECK (source IN ('score', 'api', 'replay', 'cycle')),
    PRIMARY KEY (model_name, model_version, ticker, as_of_date, horizon, source)
);
