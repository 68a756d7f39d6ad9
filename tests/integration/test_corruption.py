"""Damaged stored data: a clean error naming the file and the fix, never a traceback.

Real DuckDB files and real parquet files, damaged the way disks and people damage them:
emptied, truncated, overwritten, replaced by garbage, deleted; plus a lock really held by
another process, which is the one failure worth waiting for.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner, Result
from damage import held_open, real_warehouse
from support import SAMPLE

from pipeline.cli import main
from pipeline.data.readers import FileSource
from pipeline.data.snapshots import SnapshotStore
from pipeline.data.warehouse import DuckDBStore
from pipeline.data.warehouse_errors import WarehouseCorruptError
from pipeline.errors import DataError

NVDA_LINES = (SAMPLE / "NVDA.csv").read_text().splitlines()


def _invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


WAREHOUSE_DAMAGE: dict[str, Callable[[bytes], bytes]] = {
    "empty": lambda good: b"",
    "garbage": lambda good: b"this is not a database\n" * 200,
    "truncated": lambda good: good[: len(good) // 2],
    # DuckDB's three header blocks survive; every data and metadata block is overwritten.
    "overwritten": lambda good: good[:12288] + b"\xab" * (len(good) - 12288),
}


@pytest.mark.parametrize("damage", sorted(WAREHOUSE_DAMAGE))
def test_damaged_warehouse_fails_at_once_and_points_to_rebuild(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "wh.duckdb"
    path.write_bytes(WAREHOUSE_DAMAGE[damage](real_warehouse(path)))
    # Corrupt is not locked: classified at once (a lock wait would end in "locked").
    with pytest.raises(WarehouseCorruptError) as err:
        DuckDBStore(path, lock_timeout_seconds=30).history(("NVDA",))
    message = str(err.value)
    assert f"warehouse {path}" in message and "run `stockpipe data rebuild`" in message
    assert "locked" not in message


@pytest.mark.parametrize("damage", ["empty", "truncated"])
def test_cli_on_a_damaged_warehouse_prints_one_line_and_keeps_the_file(
    conf_dir: Path, tmp_path: Path, damage: str
) -> None:
    path = tmp_path / "warehouse.duckdb"
    path.write_bytes(WAREHOUSE_DAMAGE[damage](real_warehouse(path)))
    result = _invoke("folds", "--config", str(conf_dir))
    assert result.exit_code == 2, result.output
    assert result.output.startswith(f"error: warehouse {path} ")
    assert "stockpipe data rebuild" in result.output and "Traceback" not in result.output
    assert path.exists()  # not deleted, nor replaced by a new empty warehouse


def test_locked_warehouse_waits_then_says_locked(tmp_path: Path) -> None:
    locked = tmp_path / "held.duckdb"
    real_warehouse(locked)
    with held_open(locked), pytest.raises(DataError) as err:
        DuckDBStore(locked, lock_timeout_seconds=1.0).history(("NVDA",))
    assert not isinstance(err.value, WarehouseCorruptError)
    message = str(err.value)
    assert f"warehouse {locked} is locked by another process" in message
    assert "rebuild" not in message


def test_warehouse_path_that_is_a_folder_or_under_a_file(tmp_path: Path) -> None:
    folder = tmp_path / "wh"
    folder.mkdir()
    with pytest.raises(DataError, match=r"is a directory; set data.warehouse"):
        DuckDBStore(folder, lock_timeout_seconds=30).history(("NVDA",))
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(DataError, match=r"cannot create its folder .*set data.warehouse"):
        DuckDBStore(blocker / "wh.duckdb").history(("NVDA",))
    # Not writable even by root; waiting would not help, so no lock wait either.
    with pytest.raises(DataError, match=r"cannot be opened or written .*Permission denied"):
        DuckDBStore(Path("/sys/stockpipe.duckdb"), lock_timeout_seconds=30).history(("NVDA",))


def _import_snapshot(conf_dir: Path, tmp_path: Path) -> tuple[str, Path]:
    path = tmp_path / "in" / "NVDA.csv"
    path.parent.mkdir()
    path.write_text("\n".join(NVDA_LINES[:301]) + "\n")
    result = _invoke("data", "import", str(path), "--config", str(conf_dir))
    assert result.exit_code == 0, result.output
    entry = json.loads((tmp_path / "data" / "raw" / "manifest.jsonl").read_text())
    return entry["id"], tmp_path / "data" / "raw" / entry["path"]


def _panicking(good: bytes, scratch: Path) -> bytes | None:
    """``good`` with one footer byte changed so that polars panics reading it (None if this
    polars never does). The panic's own stderr output is sent to /dev/null meanwhile."""
    footer = struct.unpack("<I", good[-8:-4])[0]
    start = len(good) - footer - 8
    saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)
    try:
        for offset in range(start, len(good) - 8):
            bad = bytearray(good)
            bad[offset] = (bad[offset] + 1) % 256
            scratch.write_bytes(bytes(bad))
            try:
                pl.read_parquet(scratch)
            except pl.exceptions.PanicException:
                return bytes(bad)
            except Exception:  # an ordinary error is not what we look for
                continue
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)
    return None


def _other_parquet(good: bytes, scratch: Path) -> bytes:
    pl.DataFrame({"a": [1, 2, 3]}).write_parquet(scratch)
    return scratch.read_bytes()


SNAPSHOT_DAMAGE: dict[str, Callable[[bytes, Path], bytes | None]] = {
    "missing": lambda good, scratch: None,
    "empty": lambda good, scratch: b"",
    "truncated": lambda good, scratch: good[: len(good) // 2],
    "garbage": lambda good, scratch: b"PAR1" + b"\x00garbage" * 100,
    "other columns": _other_parquet,
    "panicking": _panicking,
}


@pytest.mark.parametrize("damage", sorted(SNAPSHOT_DAMAGE))
def test_damaged_snapshot_is_a_clean_error_naming_file_and_fix(
    conf_dir: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str], damage: str
) -> None:
    snap_id, parquet = _import_snapshot(conf_dir, tmp_path)
    bad = SNAPSHOT_DAMAGE[damage](parquet.read_bytes(), tmp_path / "scratch.parquet")
    if damage == "missing":
        parquet.unlink()
    elif bad is None:
        pytest.skip("this polars version does not panic on any one-byte footer change")
    else:
        parquet.write_bytes(bad)
    capfd.readouterr()
    store = SnapshotStore(tmp_path / "data" / "raw")
    with pytest.raises(DataError) as err:
        store.load([store.get(snap_id)])
    assert str(parquet) in str(err.value) and "restore the file from a backup" in str(err.value)
    result = _invoke("validate", "--config", str(conf_dir), "--snapshot", snap_id)
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit), result.output
    assert f"snapshot {snap_id}" in result.output and str(parquet) in result.output
    assert "Traceback" not in result.output
    assert "panicked" not in capfd.readouterr().err  # Rust's own report stays in the log


def test_manifest_line_that_is_not_json(conf_dir: Path, tmp_path: Path) -> None:
    _, parquet = _import_snapshot(conf_dir, tmp_path)
    manifest = tmp_path / "data" / "raw" / "manifest.jsonl"
    manifest.write_text(manifest.read_text() + '{"id": "half a line\n')
    before = manifest.read_bytes()
    for args in (
        ("data", "list"),
        ("data", "import", str(SAMPLE / "QQQ.csv")),
        ("validate", "--snapshot", "file/NVDA/x"),
    ):
        result = _invoke(*args, "--config", str(conf_dir))
        assert result.exit_code == 2, result.output
        assert f"snapshot manifest {manifest}, line 2, is not a snapshot entry" in result.output
        assert "Traceback" not in result.output
    assert manifest.read_bytes() == before  # import refused before writing anything
    assert sorted(parquet.parent.parent.parent.rglob("*.parquet")) == [parquet]


def test_an_input_parquet_that_panics_polars_is_a_one_line_error(
    conf_dir: Path, tmp_path: Path
) -> None:
    # Input files are read through the same guarded reader as snapshots: a panic is a
    # one-line error naming the file and the fix.
    good = tmp_path / "good.parquet"
    FileSource(SAMPLE / "NVDA.csv").load().frame.head(300).write_parquet(good)
    bad = _panicking(good.read_bytes(), tmp_path / "scratch.parquet")
    if bad is None:
        pytest.skip("this polars version does not panic on any one-byte footer change")
    (tmp_path / "NVDA.parquet").write_bytes(bad)
    result = _invoke("data", "import", str(tmp_path / "NVDA.parquet"), "--config", str(conf_dir))
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit), result.output
    assert result.output.startswith(f"error: data file {tmp_path / 'NVDA.parquet'} is not a")
    assert "export it again" in result.output and result.output.count("\n") == 1
