"""Prediction logs as older warehouses kept them: a `predictions` table inside the DuckDB file,
with the view over it, written with DuckDB SQL as the code of the time created them (issue 23
moved the log to its own SQLite file; these are what its migration starts from)."""

from __future__ import annotations

from pathlib import Path

import duckdb
import polars as pl

from pipeline.data.warehouse import sql_dir

_COLUMNS = """
    ticker        VARCHAR   NOT NULL,
    as_of_date    DATE      NOT NULL,
    horizon       INTEGER   NOT NULL,
    prediction    DOUBLE    NOT NULL,
    model_name    VARCHAR   NOT NULL,
    model_version VARCHAR   NOT NULL,
    run_id        VARCHAR,
    scored_at     TIMESTAMP NOT NULL,
"""
# Before issue 21: no source in the key (and no `cycle` source).
OLD_KEY = f"""
CREATE TABLE predictions ({_COLUMNS}
    source        VARCHAR   NOT NULL CHECK (source IN ('score', 'api', 'replay')),
    PRIMARY KEY (model_name, model_version, ticker, as_of_date, horizon)
);
"""
# Issue 21 to issue 23: the source in the key (sql/050_predictions.sql of that time).
SOURCE_KEY = f"""
CREATE TABLE predictions ({_COLUMNS}
    source        VARCHAR   NOT NULL CHECK (source IN ('score', 'api', 'replay', 'cycle')),
    PRIMARY KEY (model_name, model_version, ticker, as_of_date, horizon, source)
);
"""
# The persisted view those warehouses carried over the table (sql/055 of that time).
VIEW = """
CREATE OR REPLACE VIEW v_prediction_outcomes AS
WITH indexed AS (
    SELECT ticker, date, close, row_number() OVER (PARTITION BY ticker ORDER BY date) AS i
    FROM prices
)
SELECT p.*, f.date AS realised_date, ln(f.close / b.close) AS realised
FROM predictions AS p
LEFT JOIN indexed AS b ON b.ticker = p.ticker AND b.date = p.as_of_date
LEFT JOIN indexed AS f ON f.ticker = p.ticker AND f.i = b.i + p.horizon;
"""


def legacy_warehouse(path: Path, *logged: pl.DataFrame, ddl: str = SOURCE_KEY) -> None:
    """A warehouse at ``path`` (made now if missing) whose log is a table of its own, holding
    the ``logged`` frames, each written as the code of the time did: one upsert a batch."""
    with duckdb.connect(str(path)) as con:
        con.execute((sql_dir() / "000_tables.sql").read_text())
        con.execute(ddl)
        con.execute(VIEW)
        for frame in logged:
            con.register("incoming", frame.to_arrow())
            con.execute("INSERT OR REPLACE INTO predictions BY NAME SELECT * FROM incoming")
            con.unregister("incoming")


def tables(path: Path) -> set[str]:
    """The tables and views in the DuckDB file at ``path``."""
    with duckdb.connect(str(path), read_only=True) as con:
        found = con.sql(
            "SELECT table_name FROM duckdb_tables() WHERE NOT temporary "
            "UNION ALL SELECT view_name FROM duckdb_views() WHERE NOT internal AND NOT temporary"
        ).fetchall()
    return {name for (name,) in found}
