"""The embedded DuckDB warehouse: numbered SQL files in ``sql/`` define its tables and views."""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import logging
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import duckdb
import polars as pl

from pipeline.data.external import first_line
from pipeline.data.predlog import KEY as LOG_KEY
from pipeline.data.predlog import SQLiteLog, empty_log, log_path
from pipeline.data.sql_files import sql_dir
from pipeline.data.warehouse_errors import (
    REBUILD_HINT,
    WarehouseCorruptError,
    is_locked,
    raise_for,
)
from pipeline.domain import LOG_COLUMNS, PRICE_COLUMNS, Fold, FoldSpec, PriceBatch
from pipeline.errors import DataError
from pipeline.ordering import unique_keys

log = logging.getLogger(__name__)


@functools.cache
def schema_scripts() -> tuple[str, ...]:
    """The numbered ``sql/`` files in order, read once per process."""
    return tuple(p.read_text(encoding="utf-8") for p in sorted(sql_dir().glob("*.sql")))


# Whole-batch upserts by column name (no SQL is ever assembled from strings). Prices have no
# key index (sql/000_tables.sql): the keys a batch brings are deleted, then inserted.
UPSERTS = {
    "prices": (
        "DELETE FROM prices AS p USING incoming AS i WHERE p.ticker = i.ticker AND p.date = i.date",
        "INSERT INTO prices BY NAME SELECT * FROM incoming",
    ),
}
# The prediction log has its own SQLite file (pipeline/data/predlog.py). Warehouses made
# before kept it in a `predictions` table (with or without `source` in its key) and a view
# over it: the first open moves the rows out once, then drops both.
LEGACY_LOG = (
    "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() "
    "AND schema_name = 'main' AND table_name = 'predictions'"
)
DROP_LEGACY_LOG = ("DROP VIEW IF EXISTS v_prediction_outcomes", "DROP TABLE predictions")
# A rebuild of a file that still holds such a table moves its rows out first; when a damaged
# block stops that, by rowid ranges, so the block loses only the rows of the chunks stored in
# it (8192 rows: four DuckDB vectors; chunks cost ~6x a whole read, so only the fallback).
LOG_EXTENT = "SELECT count(*), coalesce(max(rowid) + 1, 0) FROM predictions"
LOG_ALL = "SELECT * FROM predictions"
LOG_CHUNK = "SELECT * FROM predictions WHERE rowid >= ? AND rowid < ?"
SALVAGE_CHUNK = 8192
HISTORY = "SELECT * FROM prices_with_benchmark(?, ?) ORDER BY ticker, date"
LATEST = "SELECT * FROM latest_prices_with_benchmark(?, ?, ?) ORDER BY ticker, date"


@dataclass(frozen=True)
class LogCopy:
    """The prediction-log rows read from a warehouse file, and what could not be read."""

    rows: pl.DataFrame  # LOG_COLUMNS
    problem: str | None = None  # None when every row was read


class DuckDBStore:
    """A PriceStore backed by one DuckDB file (``:memory:`` works for tests)."""

    def __init__(self, path: Path | str, lock_timeout_seconds: float = 60.0) -> None:
        self.path = path
        self.lock_timeout = lock_timeout_seconds
        # The prediction log's own file beside this one (created by its first write).
        self.log = SQLiteLog(log_path(path))
        self._memory: duckdb.DuckDBPyConnection | None = None
        self._schema_ready = False

    def _open(self, read_only: bool = False) -> duckdb.DuckDBPyConnection:
        # DuckDB allows one writing process per file: another job (a worker, a score run) may
        # hold it briefly, so wait for the lock. Any other failure will not go away by
        # waiting (a corrupt file, a folder, no permission), so it fails at once.
        if isinstance(self.path, Path):
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise DataError(
                    f"warehouse {self.path}: cannot create its folder ({exc.strerror}: "
                    f"{exc.filename}); set data.warehouse to a writable path"
                ) from exc
        deadline = time.monotonic() + self.lock_timeout
        while True:
            try:
                return duckdb.connect(str(self.path), read_only=read_only)
            except duckdb.Error as exc:
                if not is_locked(exc):
                    raise_for(self.path, exc)
                if time.monotonic() > deadline:
                    raise DataError(
                        f"warehouse {self.path} is locked by another process (waited "
                        f"{self.lock_timeout:g}s); wait for that job to finish or stop it: "
                        f"{first_line(exc)}"
                    ) from exc
            time.sleep(0.2)

    def _connect(self) -> duckdb.DuckDBPyConnection:
        # The DDL runs once per store, not per session: a service logging every request
        # paid ~70 ms a call for it. A file that vanished since (deleted, rebuilt) is set up
        # again.
        on_disk = str(self.path) != ":memory:"
        fresh = not self._schema_ready or (on_disk and not Path(self.path).exists())
        con = self._open()
        if not fresh:
            return con
        try:
            if con.execute(LEGACY_LOG).fetchall()[0][0]:
                self._move_log(con)
            for script in schema_scripts():
                con.execute(script)
        except BaseException:
            con.close()
            raise
        self._schema_ready = True
        return con

    def _move_log(self, con: duckdb.DuckDBPyConnection) -> None:
        """Move the prediction log this file still keeps into the SQLite log, once: its rows
        copied in one SQLite transaction (a row already there on the same key was written
        later, and stays), checked there, then the table and its view dropped. Interrupted
        in between, the next open copies again and changes nothing."""
        rows = _log_frame(con.sql(LOG_ALL).to_arrow_table())
        added = self.log.adopt(rows)
        kept = self.log.rows().join(rows, on=list(LOG_KEY), how="semi").height
        if kept != rows.height:  # nothing is dropped unless every row is in the log
            raise DataError(
                f"moving the prediction log out of {self.path}: {kept} of {rows.height} rows "
                f"found in {self.log.path}; nothing was dropped"
            )
        con.execute("BEGIN TRANSACTION")
        try:
            for statement in DROP_LEGACY_LOG:
                con.execute(statement)
            con.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(duckdb.Error):
                con.execute("ROLLBACK")
            raise
        log.info(
            "moved %d logged predictions (%d new) from %s to %s",
            rows.height,
            added,
            self.path,
            self.log.path,
        )

    @contextmanager
    def session(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection for one operation: opened on first use (so a job that fails
        validation leaves the file untouched) and closed after it, so several processes can
        share the warehouse. ``:memory:`` keeps one connection for the store's lifetime."""
        if str(self.path) == ":memory:":
            if self._memory is None:
                self._memory = self._connect()
            yield self._memory
            return
        try:
            con = self._connect()
            try:
                yield con
            finally:
                con.close()
        except duckdb.Error as exc:
            raise_for(self.path, exc)

    def verify(self) -> int:
        """Read every stored row without writing anything (so DuckDB checks every page's
        checksum); returns the row count. WarehouseCorruptError if the file is damaged or is
        some other DuckDB database, DataError if it is locked."""
        try:
            con = self._open(read_only=True)
            try:
                # Hashing whole rows makes DuckDB read every column of every row.
                row = con.execute("SELECT count(*), bit_xor(hash(p)) FROM prices AS p").fetchone()
            finally:
                con.close()
        except duckdb.CatalogException as exc:
            raise WarehouseCorruptError(
                f"warehouse {self.path} is a DuckDB database without a prices table; "
                + REBUILD_HINT
            ) from exc
        except duckdb.Error as exc:
            raise_for(self.path, exc)
        return int(row[0]) if row else 0

    def read_log(self) -> LogCopy:
        """Every row of a prediction log this file still keeps (made before the log had its
        own file), read without writing anything, so that a rebuild keeps them: chunk by
        chunk, so a damaged block loses only its own rows, with ``problem`` saying what was
        lost. DataError if the file is locked."""
        try:
            con = self._open(read_only=True)
        except WarehouseCorruptError as exc:  # DuckDB's own words, not our rebuild advice
            why = first_line(exc.__cause__ if exc.__cause__ is not None else exc)
            return LogCopy(empty_log(), f"no prediction could be read: {why}")
        try:
            try:
                count, end = con.execute(LOG_EXTENT).fetchall()[0]
            except duckdb.CatalogException:  # no log in this file (moved out, or never kept)
                return LogCopy(empty_log())
            except duckdb.Error as exc:
                return LogCopy(empty_log(), f"no prediction could be read: {first_line(exc)}")
            try:
                parts, failed = [_log_frame(con.sql(LOG_ALL).to_arrow_table())], 0
            except duckdb.Error:  # a checksum failure: read around the damaged block
                parts, failed = _log_chunks(con, end)
        finally:
            con.close()
        rows = pl.concat([empty_log(), *parts], how="vertical_relaxed")
        if failed == 0:
            return LogCopy(rows)
        return LogCopy(
            rows,
            f"{count - rows.height} of {count} logged predictions were "
            f"unreadable ({failed} damaged chunk(s) of {SALVAGE_CHUNK} rows)",
        )

    def close(self) -> None:
        self.log.close()
        if self._memory is not None:
            self._memory.close()
            self._memory = None

    def upsert(self, batch: PriceBatch) -> int:
        """Insert or replace rows by (ticker, date) atomically; returns rows written.

        DataError if the batch holds a (ticker, date) twice: the table has no key index to
        refuse it (every source checks this already; this keeps the table sound anyway).
        """
        if not unique_keys(batch.frame):
            raise DataError(f"{batch.source}: duplicate (ticker, date) rows; nothing written")
        frame = batch.frame.select(PRICE_COLUMNS).with_columns(
            pl.lit(batch.source).alias("source"),
            pl.lit(dt.datetime.now(dt.UTC).replace(tzinfo=None)).alias("loaded_at"),
        )
        return self._insert_or_replace("prices", frame)

    def record(self, frame: pl.DataFrame) -> int:
        """Append predictions to the log (its own SQLite file, ``self.log``) in one
        transaction (idempotent on its key, which holds the source: a source replaces only
        its own rows). Never opens the warehouse, so it never waits for its lock."""
        return self.log.record(frame)

    def _insert_or_replace(self, table: Literal["prices"], frame: pl.DataFrame) -> int:
        """All of ``frame`` into ``table`` by column name in one transaction, or none of it."""
        arrow = frame.to_arrow()
        with self.session() as con:
            con.execute("BEGIN TRANSACTION")
            try:
                con.register("incoming", arrow)
                for statement in UPSERTS[table]:
                    con.execute(statement)
                con.unregister("incoming")
                con.execute("COMMIT")
            except duckdb.Error:
                # On a damaged file the rollback fails too; the first error is the one to tell.
                with contextlib.suppress(duckdb.Error):
                    con.execute("ROLLBACK")
                raise
        return frame.height

    def outcomes(self) -> pl.DataFrame:
        """The prediction log joined to realised forward returns: the SQLite log's rows
        registered as ``predictions`` under ``v_prediction_outcomes``
        (``sql/log/055_v_prediction_outcomes.sql``), the one definition of an outcome."""
        with self.session() as con:  # opened first: a log still in this file moves out
            con.register("predictions", self.log.rows().to_arrow())
            try:
                con.execute(_outcomes_view())
                found = con.sql("SELECT * FROM v_prediction_outcomes").to_arrow_table()
            finally:
                con.unregister("predictions")
        return pl.from_arrow(found)  # type: ignore[return-value]

    def _query(self, sql: str, params: list[Any]) -> pl.DataFrame:
        with self.session() as con:
            return pl.from_arrow(con.sql(sql, params=params).to_arrow_table())  # type: ignore[return-value]

    def history(
        self,
        tickers: tuple[str, ...],
        benchmark: str | None = None,
        rows: int | None = None,
        ranges: Mapping[str, tuple[dt.date, dt.date]] | None = None,
    ) -> pl.LazyFrame:
        """Typed price history for ``tickers`` (one row per ticker and date).

        ``ranges`` limits each ticker to (first, last) dates, e.g. those of the input file;
        with ``benchmark`` a ``bench_close`` column holds that ticker's close on the same date;
        with ``rows`` only the last ``rows`` rows per ticker (within its range) are returned.
        """
        if benchmark is not None:
            self._require(benchmark)
        bounds = _bounds(tickers, ranges)
        params: list[Any] = [benchmark, bounds]
        # Numbering rows from the newest is paid only when a window is asked for.
        if rows is None:
            frame = self._query(HISTORY, params)
        else:
            frame = self._query(LATEST, [*params, rows])
        if frame.height == 0:
            raise DataError(f"warehouse {self.path}: no prices for tickers {list(tickers)}")
        return (frame if benchmark is not None else frame.drop("bench_close")).lazy()

    def _require(self, ticker: str) -> None:
        with self.session() as con:
            found = con.execute(
                "SELECT count(*) FROM v_prices WHERE ticker = ?", [ticker]
            ).fetchall()
        if found[0][0] == 0:
            raise DataError(
                f"warehouse {self.path}: benchmark '{ticker}' has no prices; set data.benchmark "
                "to its file (the sample ships data/sample/SPY.csv)"
            )

    def folds(
        self,
        tickers: tuple[str, ...],
        spec: FoldSpec,
        ranges: Mapping[str, tuple[dt.date, dt.date]] | None = None,
    ) -> list[Fold]:
        """Read the fold manifest view for ``tickers`` with the given fold parameters."""
        values = spec.sql_values()
        with self.session() as con:
            con.execute("BEGIN TRANSACTION")
            try:
                con.execute("DELETE FROM fold_params")
                con.execute(
                    "INSERT INTO fold_params (scheme, n_folds, test_size, step, purge, embargo, "
                    "min_train_size, max_train_size, horizon, warmup) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    values,
                )
                # The calendar is the panel's, not the whole warehouse's.
                con.execute("DELETE FROM panel")
                con.execute(
                    "INSERT INTO panel SELECT unnest(?, recursive := true)",
                    [_bounds(tickers, ranges)],
                )
                rows = con.sql("SELECT * FROM v_folds ORDER BY fold").fetchall()
                cols = [d[0] for d in con.sql("SELECT * FROM v_folds LIMIT 0").description]
                con.execute("COMMIT")
            except duckdb.Error:
                # On a damaged file the rollback fails too; the first error is the one to tell.
                with contextlib.suppress(duckdb.Error):
                    con.execute("ROLLBACK")
                raise
        manifest = [dict(zip(cols, row, strict=True)) for row in rows]
        return _to_folds(manifest, spec)


def _log_chunks(con: duckdb.DuckDBPyConnection, end: int) -> tuple[list[pl.DataFrame], int]:
    """The log's rows by rowid ranges up to ``end``, and how many ranges failed to read."""
    parts: list[pl.DataFrame] = []
    failed = 0
    for start in range(0, end, SALVAGE_CHUNK):
        try:
            arrow = con.sql(LOG_CHUNK, params=[start, start + SALVAGE_CHUNK]).to_arrow_table()
        except duckdb.Error:  # a checksum failure: the connection stays usable
            failed += 1
            continue
        parts.append(_log_frame(arrow))
    return parts, failed


def _log_frame(arrow: Any) -> pl.DataFrame:
    return pl.from_arrow(arrow).select(LOG_COLUMNS)  # type: ignore[union-attr]


@functools.cache
def _outcomes_view() -> str:
    return (sql_dir() / "log" / "055_v_prediction_outcomes.sql").read_text(encoding="utf-8")


def _bounds(
    tickers: tuple[str, ...], ranges: Mapping[str, tuple[dt.date, dt.date]] | None
) -> list[dict[str, Any]]:
    wide = (dt.date(1, 1, 1), dt.date(9999, 12, 31))
    return [
        {"ticker": t, "first_date": r[0], "last_date": r[1]}
        for t in tickers
        for r in [(ranges or {}).get(t, wide)]
    ]


def _to_folds(manifest: list[dict[str, Any]], spec: FoldSpec) -> list[Fold]:
    folds = []
    for row in manifest:
        if row["train_end"] is None or row["test_start"] is None or row["train_start"] is None:
            raise DataError(
                f"not enough history for {spec.n_folds} folds of {spec.test_size} "
                "test days; lower training.folds.n_folds or test_size"
            )
        if row["train_days"] < spec.min_train_size:
            raise DataError(
                f"fold {row['fold']} has {row['train_days']} training days past the feature "
                f"warm-up ({spec.warmup} rows per ticker), fewer than "
                f"training.folds.min_train_size={spec.min_train_size}"
            )
        folds.append(
            Fold(
                fold=row["fold"],
                train_start=row["train_start"],
                train_end=row["train_end"],
                test_start=row["test_start"],
                test_end=row["test_end"],
                train_rows=row["train_rows"],
                test_rows=row["test_rows"],
            )
        )
    return folds
