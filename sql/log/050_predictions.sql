-- The prediction log (SQLite, its own file next to the warehouse: pipeline/data/predlog.py).
-- Every `score` run, replay, cycle and POST /predict appends here. It lives outside the DuckDB
-- warehouse because DuckDB lets one process write a file at a time, and a busy service would
-- hold the prices file; SQLite in WAL mode takes writers from many processes (each waits its
-- turn for milliseconds) while readers never wait.
-- The source is part of the key, so a source replaces only its own rows: re-scoring the same
-- evening with the same version replaces that run's row, while an API call (any client may
-- make one) can never rewrite the track record of `score`, `replay` or `cycle` rows that
-- `monitor` grades. Dates are ISO text (sortable, readable in the sqlite3 shell); scored_at is
-- UTC with microseconds. STRICT: a wrong type is refused, not coerced.
-- Since issue 25 every file also gets a nullable `intervals` column (the bounds as JSON),
-- added by sql/log/070_predictions_intervals.sql to new and old files alike.
CREATE TABLE IF NOT EXISTS predictions (
    ticker        TEXT    NOT NULL,
    as_of_date    TEXT    NOT NULL,  -- YYYY-MM-DD
    horizon       INTEGER NOT NULL,
    prediction    REAL    NOT NULL,
    model_name    TEXT    NOT NULL,
    model_version TEXT    NOT NULL,
    run_id        TEXT,
    scored_at     TEXT    NOT NULL,  -- UTC, YYYY-MM-DD HH:MM:SS.ffffff
    source        TEXT    NOT NULL CHECK (source IN ('score', 'api', 'replay', 'cycle')),
    PRIMARY KEY (model_name, model_version, ticker, as_of_date, horizon, source)
) STRICT;
