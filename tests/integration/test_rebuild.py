"""`stockpipe data rebuild`: the warehouse recreated from the snapshots, atomically.

The old file is kept under a new name, newer snapshots win on (ticker, date) whatever their
order in the manifest, and a bad snapshot or manifest makes the rebuild refuse and change
nothing.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from pathlib import Path

import duckdb
import polars as pl
import pytest
from click.testing import CliRunner, Result
from damage import held_open, real_warehouse
from legacylog import legacy_warehouse, tables
from support import SAMPLE

from pipeline.cli import main
from pipeline.data.predlog import SQLiteLog
from pipeline.data.rebuild import rebuild
from pipeline.data.snapshots import SnapshotStore
from pipeline.data.warehouse import DuckDBStore
from pipeline.domain import LOG_COLUMNS
from pipeline.errors import DataError

HEADER, *ROWS = (SAMPLE / "NVDA.csv").read_text().splitlines()


def _invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def _csv(tmp_path: Path, folder: str, rows: list[str]) -> Path:
    path = tmp_path / folder / "NVDA.csv"
    path.parent.mkdir()
    path.write_text("\n".join([HEADER, *rows]) + "\n")
    return path


def _doubled(rows: list[str]) -> list[str]:
    """The same days with every price doubled: a later, different load of the overlap."""
    out = []
    for row in rows:
        date, *prices, volume = row.split(",")
        out.append(",".join([date, *(str(2 * float(p)) for p in prices), volume]))
    return out


@pytest.fixture
def two_snapshots(conf_dir: Path, tmp_path: Path) -> tuple[dict[str, str], dict[str, str]]:
    """An import of rows 0..300, then a newer one of rows 200..400 with other prices."""
    for folder, rows in (("old", ROWS[:300]), ("new", _doubled(ROWS[200:400]))):
        result = _invoke(
            "data", "import", str(_csv(tmp_path, folder, rows)), "--config", str(conf_dir)
        )
        assert result.exit_code == 0, result.output
    old, new = _manifest(tmp_path).read_text().splitlines()
    return json.loads(old), json.loads(new)


def _manifest(tmp_path: Path) -> Path:
    return tmp_path / "data" / "raw" / "manifest.jsonl"


def _rows(path: Path) -> list[tuple[str, float, str]]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.sql(
            "SELECT CAST(date AS VARCHAR), close, source FROM prices ORDER BY date"
        ).fetchall()
    finally:
        con.close()


def test_rebuild_moves_the_corrupt_file_aside_and_newer_snapshots_win(
    conf_dir: Path, tmp_path: Path, two_snapshots: tuple[dict[str, str], dict[str, str]]
) -> None:
    old, new = two_snapshots
    warehouse = tmp_path / "warehouse.duckdb"
    garbage = b"not a database" * 100
    warehouse.write_bytes(garbage)
    # Manifest order must not matter: the newer snapshot is listed first here.
    lines = _manifest(tmp_path).read_text().splitlines()
    _manifest(tmp_path).write_text("\n".join(reversed(lines)) + "\n")
    result = _invoke("data", "rebuild", "--config", str(conf_dir))
    assert result.exit_code == 0, result.output
    (kept,) = tmp_path.glob("warehouse.duckdb.corrupt-*")
    assert re.fullmatch(r"warehouse\.duckdb\.corrupt-\d{8}T\d{6}Z", kept.name)
    assert kept.read_bytes() == garbage and str(kept) in result.output
    assert f"rebuilt {warehouse} from 2 snapshot(s), 400 rows" in result.output
    assert "warning: old prediction log not read in full: no prediction could be read" in (
        result.output
    )
    rows = _rows(warehouse)
    assert len(rows) == 400 and len({r[0] for r in rows}) == 400
    first_close = float(ROWS[0].split(",")[4])
    assert rows[0] == (ROWS[0].split(",")[0], first_close, old["id"])
    overlap = rows[200:300]
    assert {r[2] for r in overlap} == {new["id"]}
    assert overlap[0][1] == 2 * float(ROWS[200].split(",")[4])
    assert not list(tmp_path.glob(".warehouse.duckdb.rebuild-*"))  # no temp folder left
    assert warehouse.stat().st_mode & 0o777 == 0o666 & ~_umask()
    folds = _invoke("folds", "--config", str(conf_dir), "--format", "json")
    assert folds.exit_code == 0, folds.output


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_rebuild_of_a_readable_or_missing_warehouse(
    tmp_path: Path, two_snapshots: tuple[dict[str, str], dict[str, str]]
) -> None:
    store = SnapshotStore(tmp_path / "data" / "raw")
    healthy = tmp_path / "warehouse.duckdb"  # written by the imports
    before = healthy.read_bytes()
    result = rebuild(store, healthy)
    assert result.kept_as is not None and result.kept_as.name.startswith(
        "warehouse.duckdb.previous-"
    )
    assert result.kept_as.read_bytes() == before and len(_rows(healthy)) == 400
    again = rebuild(store, healthy)  # within the same second: a second name, not an overwrite
    assert again.kept_as is not None and again.kept_as != result.kept_as
    assert result.kept_as.read_bytes() == before
    fresh = tmp_path / "fresh" / "wh.duckdb"
    result = rebuild(store, fresh)
    assert result.kept_as is None and len(_rows(fresh)) == 400
    assert sorted(p.name for p in fresh.parent.iterdir()) == ["wh.duckdb"]


def _snapshot_of_everything(tmp_path: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in sorted(tmp_path.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("damage", ["snapshot file", "manifest line", "no manifest"])
def test_rebuild_refuses_and_changes_nothing(
    conf_dir: Path,
    tmp_path: Path,
    two_snapshots: tuple[dict[str, str], dict[str, str]],
    damage: str,
) -> None:
    old, _ = two_snapshots
    (tmp_path / "warehouse.duckdb").write_bytes(b"")
    raw = tmp_path / "data" / "raw"
    if damage == "snapshot file":
        (raw / old["path"]).write_bytes(b"PAR1 truncated")
        expected = f"snapshot {old['id']}: file {raw / old['path']}"
    elif damage == "manifest line":
        _manifest(tmp_path).write_text(_manifest(tmp_path).read_text() + "oops\n")
        expected = f"snapshot manifest {_manifest(tmp_path)}, line 3, is not a snapshot entry"
    else:
        _manifest(tmp_path).unlink()
        expected = (
            f"snapshot manifest {_manifest(tmp_path)} does not exist: 2 snapshot file(s) "
            f"under {raw} are not listed: restore manifest.jsonl from a backup"
        )
    before = _snapshot_of_everything(tmp_path)
    result = _invoke("data", "rebuild", "--config", str(conf_dir))
    assert result.exit_code == 2 and expected in result.output, result.output
    assert "Traceback" not in result.output
    assert _snapshot_of_everything(tmp_path) == before
    assert not list(tmp_path.glob(".warehouse.duckdb.*"))


def test_rebuild_refuses_a_warehouse_another_process_holds(
    tmp_path: Path, two_snapshots: tuple[dict[str, str], dict[str, str]]
) -> None:
    locked = tmp_path / "held" / "held.duckdb"
    locked.parent.mkdir()
    before = real_warehouse(locked)
    store = SnapshotStore(tmp_path / "data" / "raw")
    with held_open(locked), pytest.raises(DataError, match="is locked by another process"):
        rebuild(store, locked, lock_timeout=0.5)
    assert locked.read_bytes() == before
    assert sorted(p.name for p in locked.parent.glob("held.duckdb*")) == ["held.duckdb"]


def test_an_import_into_a_corrupt_warehouse_is_kept_and_the_rebuild_loads_it(
    conf_dir: Path, tmp_path: Path
) -> None:
    warehouse = tmp_path / "warehouse.duckdb"
    warehouse.write_bytes(b"")
    csv = _csv(tmp_path, "in", ROWS[:250])
    result = _invoke("data", "import", str(csv), "--config", str(conf_dir))
    assert result.exit_code == 2, result.output
    (entry,) = [json.loads(line) for line in _manifest(tmp_path).read_text().splitlines()]
    assert f"kept as snapshot(s) {entry['id']}, so the rebuild loads it too" in result.output
    assert "stockpipe data rebuild" in result.output
    result = _invoke("data", "rebuild", "--config", str(conf_dir))
    assert result.exit_code == 0, result.output
    assert len(_rows(warehouse)) == 250


def _log(n: int, source: str, pred: float = 0.01) -> pl.DataFrame:
    """``n`` logged predictions of one source on distinct (version, date) keys."""
    return pl.DataFrame(
        {
            "ticker": "NVDA",
            "as_of_date": [dt.date(2000, 1, 1) + dt.timedelta(days=i % 9000) for i in range(n)],
            "horizon": 1,
            "prediction": [pred + i * 1e-6 for i in range(n)],
            "model_name": "M",
            "model_version": [str(i // 9000) for i in range(n)],
            "run_id": "r",
            "scored_at": dt.datetime(2026, 1, 2, 3, 4, 5),
            "source": source,
        },
        schema_overrides={"horizon": pl.Int32},
    ).select(LOG_COLUMNS)


def _logged(warehouse: Path) -> pl.DataFrame:
    """Every row of ``warehouse``'s prediction log (its own SQLite file), sorted."""
    return SQLiteLog(warehouse.with_name(f"{warehouse.stem}.log.sqlite")).rows().sort(LOG_COLUMNS)


def test_rebuild_of_a_healthy_warehouse_keeps_every_logged_prediction(
    conf_dir: Path, tmp_path: Path, two_snapshots: tuple[dict[str, str], dict[str, str]]
) -> None:
    """Issue 21 item 3, issue 23: the log is in no snapshot; it has its own file, which the
    rebuild leaves as it is."""
    warehouse = tmp_path / "warehouse.duckdb"
    store = DuckDBStore(warehouse)
    # Score and API rows on the same keys, and a cycle row: every one is its own row.
    for frame in (_log(50, "score"), _log(50, "api", pred=0.5), _log(3, "cycle")):
        store.record(frame)
    before = _logged(warehouse)
    assert before.height == 103
    result = _invoke("data", "rebuild", "--config", str(conf_dir))
    assert result.exit_code == 0, result.output
    assert _logged(warehouse).equals(before) and len(_rows(warehouse)) == 400
    assert "400 rows" in result.output and "moved" not in result.output
    assert DuckDBStore(warehouse).outcomes().height == 103  # still joined to the prices
    assert "delete" not in result.output.lower() and "warning" not in result.output


def test_rebuild_of_a_warehouse_that_still_keeps_its_log_moves_it_out(
    conf_dir: Path, tmp_path: Path, two_snapshots: tuple[dict[str, str], dict[str, str]]
) -> None:
    """A warehouse of the release before issue 23, never opened since: its log table is the
    only copy of those predictions, so the rebuild moves them into the log file first."""
    warehouse = tmp_path / "warehouse.duckdb"
    before = pl.concat([_log(50, "score"), _log(50, "api", pred=0.5), _log(3, "cycle")])
    legacy_warehouse(warehouse, before)
    result = _invoke("data", "rebuild", "--config", str(conf_dir))
    assert result.exit_code == 0, result.output
    assert _logged(warehouse).equals(before.sort(LOG_COLUMNS))
    assert "103 logged prediction(s) moved from the old file" in result.output
    assert "predictions" not in tables(warehouse)
    (kept,) = tmp_path.glob("warehouse.duckdb.previous-*")
    assert "predictions" in tables(kept)  # the old file still holds them too


def _blocks(path: Path, table: str) -> set[int]:
    """The data blocks holding ``table``'s column segments."""
    with duckdb.connect(str(path), read_only=True) as con:
        found = con.execute(
            "SELECT DISTINCT block_id FROM pragma_storage_info(?) WHERE block_id >= 0", [table]
        ).fetchall()
    return {b for (b,) in found}


def _damage_block(path: Path, block: int) -> None:
    """Overwrite the start of one data block (after the 3 header blocks of 4 KiB; 256 KiB
    each, led by an 8-byte checksum), so it fails its checksum while the rest reads."""
    with path.open("r+b") as f:
        f.seek(3 * 4096 + block * 262144 + 8)
        f.write(b"\xab" * 4096)


@pytest.mark.slow  # writes, damages and rebuilds a real warehouse with a log (seconds)
@pytest.mark.parametrize("damaged", ["prices", "predictions"])
def test_rebuild_of_a_damaged_warehouse_salvages_what_of_the_log_it_can_read(
    conf_dir: Path,
    tmp_path: Path,
    two_snapshots: tuple[dict[str, str], dict[str, str]],
    damaged: str,
) -> None:
    warehouse = tmp_path / "warehouse.duckdb"
    # A log still kept in the file (before issue 23), of several row groups.
    batches = (_log(300_000, "score"), _log(20, "api", pred=0.5))
    legacy_warehouse(warehouse, *batches)
    before = pl.concat(batches).sort(LOG_COLUMNS)
    prices, log = _blocks(warehouse, "prices"), _blocks(warehouse, "predictions")
    target = prices - log if damaged == "prices" else log - prices
    assert len(target) >= (1 if damaged == "prices" else 2)
    _damage_block(warehouse, max(target))  # not the first: some of the log stays readable
    result = _invoke("data", "rebuild", "--config", str(conf_dir))
    assert result.exit_code == 0, result.output
    after = _logged(warehouse)
    assert len(_rows(warehouse)) == 400
    # Every salvaged row is a logged row, unchanged.
    assert after.join(before, on=LOG_COLUMNS, how="anti").height == 0
    if damaged == "prices":  # the file is corrupt, the log intact: all of it is kept
        assert after.equals(before) and "warning" not in result.output
        assert list(tmp_path.glob("warehouse.duckdb.corrupt-*"))
        return
    lost = before.height - after.height
    assert 0 < lost < before.height
    assert f"warning: old prediction log not read in full: {lost} of {before.height}" in (
        result.output
    )
    assert f"{after.height} logged prediction(s) moved" in result.output
    (kept,) = tmp_path.glob("warehouse.duckdb.previous-*")
    assert str(kept) in result.output
