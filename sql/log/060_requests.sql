-- The service's request log (SQLite, in the prediction log's file beside the warehouse:
-- pipeline/serving/requeststore.py). One row per HTTP request the service answered, probes
-- (/health, /ready, /metrics) included, so `monitor` can report latency percentiles per
-- endpoint. It shares the prediction log's file because every serving process already writes
-- there (WAL: many writers, each waiting its turn for milliseconds, readers never waiting) and
-- `monitor` already reads it; a table of its own because it is not part of the track record.
-- Bounded: each write also deletes the oldest rows beyond the newest N (RequestStore.max_rows).
-- Rows are never updated or deleted in the middle, so rowids are consecutive in insertion
-- order and "the oldest" is a rowid range: a cheap seek, not a scan.
-- `at` is when the request arrived, UTC with microseconds (fixed-width text: it sorts and
-- compares as time); `endpoint` the matched route's path (`/predict`, or `other`), never the raw
-- path; `model_version` what answered (`3`, `h1=3,h5=2`), null before any model loaded;
-- `tickers` how many tickers a /predict carried (null elsewhere). No index on `at`: reading
-- the window scans at most N short rows (milliseconds), and writes stay cheap.
-- STRICT: a wrong type is refused, not coerced.
CREATE TABLE IF NOT EXISTS requests (
    at            TEXT    NOT NULL,  -- UTC, YYYY-MM-DD HH:MM:SS.ffffff
    endpoint      TEXT    NOT NULL,
    method        TEXT    NOT NULL,
    status        INTEGER NOT NULL,
    latency_ms    REAL    NOT NULL CHECK (latency_ms >= 0),
    request_id    TEXT    NOT NULL,
    model_version TEXT,
    tickers       INTEGER
) STRICT;
