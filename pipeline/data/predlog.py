"""The prediction log's own store: SQLite in WAL mode, in a file next to the warehouse.

The log used to be a table of the DuckDB warehouse, and DuckDB lets one process write a file
at a time: a busy service held the prices file and every batch job waited for it. SQLite in
WAL mode takes writers from any number of processes (a writer waits its turn for a few
milliseconds, up to ``busy_timeout``) and its readers never wait, so `serve --workers N`,
`score`, replay and `monitor` each open the log directly. Every commit is synced
(``synchronous=FULL``, ~1.5 ms): a request answered 200 has its rows on disk.

Realised outcomes still come from one SQL view over the warehouse's prices
(``DuckDBStore.outcomes``): DuckDB cannot scan SQLite offline, so the log's rows are read
here into Arrow and registered there as ``predictions``.

Each row also keeps its prediction's interval bounds (since issue 25): one JSON column,
``intervals``, as the levels are the model's (``encode_bounds``/``decode_bounds``); a log file
made before gets the column when first opened, its old rows null.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import polars as pl

from pipeline.data.sql_files import sql_dir
from pipeline.domain import LOG_COLUMNS
from pipeline.evaluation.intervals import bound_columns

# The log's primary key (sql/log/050_predictions.sql).
KEY = ("model_name", "model_version", "ticker", "as_of_date", "horizon", "source")
BUSY_TIMEOUT = 60.0  # seconds a writer waits for another one (they hold the lock for ms)
DATE, STAMP = "%Y-%m-%d", "%Y-%m-%d %H:%M:%S%.6f"  # how dates and UTC times are stored
# A row's interval bounds, as JSON (sql/log/070_predictions_intervals.sql): written beside
# LOG_COLUMNS (NULL when a frame has no such column), read back by `bounds`, never by `rows`.
INTERVALS = "intervals"
STORED = (*LOG_COLUMNS, INTERVALS)
BOUND_NAME = r"(?:lower|upper)_\d+"  # a bound's key in that JSON: lower_80, upper_95, ...
_COLUMNS = ", ".join(STORED)
_MARKS = ", ".join("?" for _ in STORED)
# Column names are ours (STORED), never input; the values are always bound.
REPLACE = f"INSERT OR REPLACE INTO predictions ({_COLUMNS}) VALUES ({_MARKS})"
ADOPT = f"INSERT OR IGNORE INTO predictions ({_COLUMNS}) VALUES ({_MARKS})"
READ = f"SELECT {', '.join(LOG_COLUMNS)} FROM predictions"
READ_BOUNDS = (
    f"SELECT {', '.join((*KEY, 'scored_at'))}, {INTERVALS} FROM predictions "
    f"WHERE {INTERVALS} IS NOT NULL"
)
HAS_INTERVALS = "SELECT count(*) FROM pragma_table_info('predictions') WHERE name = 'intervals'"
SCHEMA: dict[str, pl.DataType] = {
    "ticker": pl.String(),
    "as_of_date": pl.Date(),
    "horizon": pl.Int32(),
    "prediction": pl.Float64(),
    "model_name": pl.String(),
    "model_version": pl.String(),
    "run_id": pl.String(),
    "scored_at": pl.Datetime("us"),
    "source": pl.String(),
}


def log_path(warehouse: Path | str) -> Path | str:
    """Where the log of ``warehouse`` lives: ``<stem>.log.sqlite`` beside it (``:memory:``
    for an in-memory warehouse)."""
    if str(warehouse) == ":memory:":
        return ":memory:"
    path = Path(warehouse)
    return path.with_name(f"{path.stem}.log.sqlite")


@functools.cache
def ddl(name: str = "050_predictions.sql") -> str:
    """The SQL script ``sql/log/<name>`` that creates one of the log file's tables."""
    return (sql_dir() / "log" / name).read_text(encoding="utf-8")


def connect(
    path: Path | str, busy_timeout: float, script: str, synchronous: str = "FULL"
) -> sqlite3.Connection:
    """A connection to the log file ``path`` in WAL mode (folders created), autocommit
    (transactions are explicit), usable from any thread, with ``script`` run (its
    ``CREATE ... IF NOT EXISTS``) and ``synchronous`` set for this connection."""
    if path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None, check_same_thread=False)
    try:
        con.execute("PRAGMA journal_mode=WAL")  # persistent; a no-op once set
        con.execute(f"PRAGMA synchronous={synchronous}")  # ours: FULL or NORMAL, never input
        con.executescript(script)
    except BaseException:
        con.close()
        raise
    return con


def empty_log() -> pl.DataFrame:
    """No log rows, with the log's column types."""
    return pl.DataFrame(schema=SCHEMA).select(LOG_COLUMNS)


def encode_bounds(columns: Sequence[str]) -> pl.Expr:
    """The ``intervals`` column of log rows: the bound ``columns`` (``lower_80``, ...) of a
    prediction frame as one JSON object per row (a non-finite bound as null), or null for a
    model without intervals (no ``columns``)."""
    if not columns:
        return pl.lit(None, dtype=pl.String).alias(INTERVALS)
    finite = [pl.when(pl.col(c).is_finite()).then(pl.col(c)).alias(c) for c in columns]
    return pl.struct(finite).struct.json_encode().alias(INTERVALS)


def decode_bounds(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` with its ``intervals`` JSON spread into one Float64 column per bound that any
    row has, in level order (``lower_80, upper_80, lower_95, upper_95``); a row without that
    bound gets null. No bound columns at all when no row has one."""
    found = frame[INTERVALS].str.extract_all(BOUND_NAME).explode().drop_nulls().unique()
    levels = sorted({name.split("_", 1)[1] for name in found.to_list()}, key=int)
    if not levels:
        return frame.drop(INTERVALS)
    shape = pl.Struct({name: pl.Float64 for name in bound_columns(levels)})
    return frame.with_columns(pl.col(INTERVALS).str.json_decode(shape)).unnest(INTERVALS)


class SQLiteLog:
    """A ``PredictionLog`` in one SQLite file (see the module docstring). One connection per
    process, used by one thread at a time: SQLite serialises writers anyway."""

    def __init__(self, path: Path | str, busy_timeout: float = BUSY_TIMEOUT) -> None:
        self.path = path
        self.busy_timeout = busy_timeout
        self._lock = threading.Lock()
        self._con: sqlite3.Connection | None = None
        self._pid = 0

    def record(self, frame: pl.DataFrame) -> int:
        """Insert or replace ``frame``'s rows (``LOG_COLUMNS``) in one committed transaction:
        all of them or none. The key holds the source, so a source replaces only its own."""
        with self._transaction() as con:
            con.executemany(REPLACE, _rows(frame))
        return frame.height

    def adopt(self, frame: pl.DataFrame) -> int:
        """Copy rows from an older log in one transaction, keeping the row already here on a
        shared key (it was written later); returns how many were new."""
        with self._transaction() as con:
            before = con.total_changes
            con.executemany(ADOPT, _rows(frame))
            return con.total_changes - before

    def exists(self) -> bool:
        """Whether the log's file is there (anything was ever logged, or it was moved in)."""
        return self.path == ":memory:" or Path(self.path).exists()

    def rows(self) -> pl.DataFrame:
        """Every logged row (``LOG_COLUMNS``, typed); empty while nothing was ever logged."""
        if not self.exists():
            return empty_log()  # reading creates nothing
        return _typed(self._read(READ), SCHEMA)

    def bounds(self) -> pl.DataFrame:
        """The interval bounds of every logged row that has some: its ``KEY`` and
        ``scored_at``, then one Float64 column per bound (:func:`decode_bounds`)."""
        schema = {c: SCHEMA[c] for c in (*KEY, "scored_at")} | {INTERVALS: pl.String()}
        found = self._read(READ_BOUNDS) if self.exists() else []
        return decode_bounds(_typed(found, schema))

    def _read(self, query: str) -> list[tuple[object, ...]]:
        with self._lock:
            return self._connection().execute(query).fetchall()

    def close(self) -> None:
        """Close this process's connection (the next use opens another)."""
        with self._lock:
            if self._con is not None:
                self._con.close()
                self._con = None

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        # BEGIN IMMEDIATE takes the write lock up front (waiting up to busy_timeout), so a
        # transaction never fails half-way on another process's lock.
        with self._lock:
            con = self._connection()
            con.execute("BEGIN IMMEDIATE")
            try:
                yield con
            except BaseException:
                # On a broken connection the rollback fails too; the first error is the one.
                with contextlib.suppress(sqlite3.Error):
                    con.rollback()
                raise
            con.commit()

    def _connection(self) -> sqlite3.Connection:
        # A forked child must not use its parent's connection; it opens its own.
        if self._con is not None and self._pid == os.getpid():
            return self._con
        con = connect(self.path, self.busy_timeout, ddl())  # FULL: sync every commit
        try:
            _add_intervals(con)
        except BaseException:
            con.close()
            raise
        self._con, self._pid = con, os.getpid()
        return con


def _add_intervals(con: sqlite3.Connection) -> None:
    """Give the table its ``intervals`` column when it has none (a new file, or one made
    before issue 25): checked again under the write lock, so two processes add it once."""
    if con.execute(HAS_INTERVALS).fetchone() == (1,):
        return
    con.execute("BEGIN IMMEDIATE")
    try:
        if con.execute(HAS_INTERVALS).fetchone() == (0,):
            con.execute(ddl("070_predictions_intervals.sql"))
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            con.rollback()
        raise
    con.commit()


def _typed(found: list[tuple[object, ...]], schema: dict[str, pl.DataType]) -> pl.DataFrame:
    """Rows read from the log as a frame of ``schema``: dates and times arrive as the text
    they are stored as, then are parsed."""
    stored = {**schema, "as_of_date": pl.String(), "scored_at": pl.String()}
    raw = pl.DataFrame(found, schema=stored, orient="row")
    return raw.with_columns(
        pl.col("as_of_date").str.to_date(DATE),
        pl.col("scored_at").str.to_datetime(STAMP, time_unit="us"),
    )


def _rows(frame: pl.DataFrame) -> list[tuple[object, ...]]:
    """``frame``'s log columns (``intervals`` null when it has none) as bound values: dates
    and UTC times as ISO text."""
    if INTERVALS not in frame.columns:
        frame = frame.with_columns(pl.lit(None, dtype=pl.String).alias(INTERVALS))
    text = frame.select(STORED).with_columns(
        pl.col("as_of_date").cast(pl.Date).dt.strftime(DATE),
        pl.col("scored_at").cast(pl.Datetime("us")).dt.strftime(STAMP),
    )
    return text.rows()
