"""Raw snapshots: immutable, deduplicated, pinnable, tamper-evident and written atomically."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import duckdb
import mlflow
import polars as pl
import pytest
from click.testing import CliRunner, Result
from support import SAMPLE, write_yaml

from pipeline.cli import main
from pipeline.data.readers import FileSource
from pipeline.data.snapshots import SnapshotStore, content_sha256
from pipeline.errors import DataError

STAMP = re.compile(r"^\d{8}T\d{12}Z$")
NVDA_LINES = (SAMPLE / "NVDA.csv").read_text().splitlines()


def _invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def _nvda(tmp_path: Path, start: int, stop: int | None, folder: str) -> Path:
    """NVDA.csv (the stem names the ticker) with sample data rows [start, stop)."""
    path = tmp_path / folder / "NVDA.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([NVDA_LINES[0], *NVDA_LINES[1:][start:stop]]) + "\n")
    return path


def _import(conf_dir: Path, path: Path) -> Result:
    result = _invoke("data", "import", str(path), "--config", str(conf_dir))
    assert result.exit_code == 0, result.output
    return result


def _raw(tmp_path: Path) -> Path:
    return tmp_path / "data" / "raw"


def _manifest(tmp_path: Path) -> list[dict[str, Any]]:
    text = (_raw(tmp_path) / "manifest.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _parquets(tmp_path: Path) -> list[Path]:
    return sorted(_raw(tmp_path).rglob("*.parquet"))


def _per_key(tmp_path: Path) -> tuple[int, int]:
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    try:
        rows = con.sql("SELECT count(*) AS n FROM prices GROUP BY ticker, date").fetchall()
    finally:
        con.close()
    return len(rows), max(n for (n,) in rows)


def test_import_writes_a_parquet_snapshot_and_a_manifest_entry(
    conf_dir: Path, tmp_path: Path
) -> None:
    path = _nvda(tmp_path, 0, 300, "a")
    before = dt.datetime.now(dt.UTC)
    result = _import(conf_dir, path)
    (parquet,) = _parquets(tmp_path)
    assert parquet.parent == _raw(tmp_path) / "file" / "NVDA" and STAMP.match(parquet.stem)
    (entry,) = _manifest(tmp_path)
    frame = FileSource(path).load().frame
    assert pl.read_parquet(parquet).equals(frame)
    assert entry == {
        "id": f"file/NVDA/{parquet.stem}",
        "ticker": "NVDA",
        "source": "file",
        "path": f"file/NVDA/{parquet.name}",
        "sha256": content_sha256(frame),
        "rows": 300,
        "first_date": "1999-01-22",
        "last_date": str(frame["date"].max()),
        "created_at": entry["created_at"],
        "params": {"path": str(path.resolve())},
    }
    created = dt.datetime.fromisoformat(entry["created_at"])
    assert created.utcoffset() == dt.timedelta(0) and before <= created <= dt.datetime.now(dt.UTC)
    assert f"{entry['id']}  rows 300  1999-01-22..{entry['last_date']}" in result.output


def test_reimport_of_identical_content_reuses_the_snapshot(conf_dir: Path, tmp_path: Path) -> None:
    first = _import(conf_dir, _nvda(tmp_path, 0, 300, "a"))
    manifest = (_raw(tmp_path) / "manifest.jsonl").read_bytes()
    files = _parquets(tmp_path)
    again = _import(conf_dir, _nvda(tmp_path, 0, 300, "copy"))  # same content, other path
    assert _parquets(tmp_path) == files and len(files) == 1
    assert (_raw(tmp_path) / "manifest.jsonl").read_bytes() == manifest
    assert again.output == first.output


def test_overlapping_reimport_upserts_without_duplicates(conf_dir: Path, tmp_path: Path) -> None:
    _import(conf_dir, _nvda(tmp_path, 0, 300, "a"))
    later = _nvda(tmp_path, 200, 400, "b")
    _import(conf_dir, later)
    assert _per_key(tmp_path) == (400, 1)
    assert len(_manifest(tmp_path)) == 2
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    try:  # the overlap was replaced by the newer load
        sources = con.sql(
            "SELECT source, count(*) FROM prices GROUP BY source ORDER BY min(date)"
        ).fetchall()
        first = tmp_path.resolve() / "a" / "NVDA.csv"
        assert sources == [(str(first), 200), (str(later.resolve()), 200)]
    finally:
        con.close()
    _import(conf_dir, later)
    assert _per_key(tmp_path) == (400, 1)
    assert len(_manifest(tmp_path)) == 2 and len(_parquets(tmp_path)) == 2


def test_data_list_shows_every_snapshot(conf_dir: Path, tmp_path: Path) -> None:
    _import(conf_dir, _nvda(tmp_path, 0, 300, "a"))
    _import(conf_dir, _nvda(tmp_path, 0, 400, "b"))
    result = _invoke("data", "list", "--config", str(conf_dir))
    assert result.exit_code == 0, result.output
    entries = _manifest(tmp_path)
    assert len(entries) == 2
    for entry in entries:
        assert entry["id"] in result.output and entry["sha256"][:16] in result.output


def _use_snapshots(conf_dir: Path, tmp_path: Path, tickers: list[str]) -> None:
    write_yaml(
        conf_dir / "local" / "data.yaml",
        {
            "source": "snapshots",
            "tickers": tickers,
            "benchmark_path": str(SAMPLE / "SPY.csv"),
            "warehouse": str(tmp_path / "warehouse.duckdb"),
        },
    )


def test_source_snapshots_reads_the_latest_snapshot(conf_dir: Path, tmp_path: Path) -> None:
    _import(conf_dir, _nvda(tmp_path, 0, None, "full"))
    _import(conf_dir, _nvda(tmp_path, 0, 500, "short"))  # newer, so it wins though shorter
    full, short = _manifest(tmp_path)
    _use_snapshots(conf_dir, tmp_path, ["NVDA"])
    result = _invoke("validate", "--config", str(conf_dir), "--contract-only")
    assert result.exit_code == 0, result.output
    expected = hashlib.sha256(short["sha256"].encode()).hexdigest()
    assert "OK: 500 rows, tickers ['NVDA']" in result.output and expected in result.output
    pinned = _invoke("validate", "--config", str(conf_dir), "--snapshot", full["id"])
    assert "OK: 6962 rows" in pinned.output, pinned.output
    _use_snapshots(conf_dir, tmp_path, ["NVDA", "QQQ"])
    result = _invoke("validate", "--config", str(conf_dir))
    assert result.exit_code != 0 and "no snapshot of QQQ" in result.output


def test_tampered_snapshot_is_detected(conf_dir: Path, tmp_path: Path) -> None:
    _import(conf_dir, _nvda(tmp_path, 0, 300, "a"))
    (entry,) = _manifest(tmp_path)
    parquet = _raw(tmp_path) / entry["path"]
    frame = pl.read_parquet(parquet)
    frame.with_columns(pl.col("volume") + 1).write_parquet(parquet)
    store = SnapshotStore(_raw(tmp_path))
    with pytest.raises(DataError, match="does not match its manifest sha256"):
        store.load([store.get(entry["id"])])
    result = _invoke("validate", "--config", str(conf_dir), "--snapshot", entry["id"])
    assert result.exit_code != 0 and "tampered" in result.output


def test_crash_while_writing_leaves_no_half_file_and_no_entry(
    conf_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _import(conf_dir, _nvda(tmp_path, 0, 300, "a"))
    manifest = (_raw(tmp_path) / "manifest.jsonl").read_bytes()
    files = set(_raw(tmp_path).rglob("*"))
    partial: list[Path] = []

    def crash(self: pl.DataFrame, file: Path, *args: Any, **kwargs: Any) -> None:
        Path(file).write_bytes(b"PAR1 half a row group")
        partial.append(Path(file))
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pl.DataFrame, "write_parquet", crash)
    result = _invoke("data", "import", str(_nvda(tmp_path, 0, 400, "b")), "--config", str(conf_dir))
    assert isinstance(result.exception, OSError)
    assert len(partial) == 1 and partial[0].parent == _raw(tmp_path) / "file" / "NVDA"
    assert set(_raw(tmp_path).rglob("*")) == files  # neither the temp file nor a final name
    assert (_raw(tmp_path) / "manifest.jsonl").read_bytes() == manifest
    assert _per_key(tmp_path) == (300, 1)  # the warehouse was not loaded either


@pytest.mark.slow
def test_train_pinned_to_an_older_snapshot_records_it_in_lineage(
    conf_dir: Path, tmp_path: Path
) -> None:
    write_yaml(
        conf_dir / "local" / "training.yaml",
        {
            "summary_path": str(tmp_path / "summary.json"),
            "folds": {"n_folds": 2, "test_size": 100, "min_train_size": 300},
        },
    )
    _import(conf_dir, _nvda(tmp_path, 0, 1500, "old"))
    _import(conf_dir, _nvda(tmp_path, 0, None, "new"))
    old, new = _manifest(tmp_path)
    args = ["train", "--config", str(conf_dir), "--trials", "1", "--quiet"]
    result = _invoke(*args, "--snapshot", old["id"])
    assert result.exit_code == 0, result.output
    doc = json.loads((tmp_path / "summary.json").read_text())
    data_sha = hashlib.sha256(old["sha256"].encode()).hexdigest()
    assert doc["data"]["rows"] == 1500 and doc["data"]["last_date"] == old["last_date"]
    assert doc["data"]["sha256"] == data_sha and doc["data"]["source"] == old["id"]
    assert doc["lineage"]["snapshot_ids"] == old["id"] != new["id"]
    # A pinned input is not snapshotted again; the benchmark file (SPY) is kept once.
    assert [e["ticker"] for e in _manifest(tmp_path)] == ["NVDA", "NVDA", "SPY"]
    assert doc["lineage"]["benchmark_snapshot_ids"] == _manifest(tmp_path)[2]["id"]

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    version = client.get_model_version("StocksPredictionModel", doc["champion"]["version"])
    assert version.tags["snapshot_ids"] == old["id"]
    assert version.tags["data_sha256"] == data_sha
    params = client.get_run(doc["champion"]["parent_run_id"]).data.params
    assert params["snapshot_ids"] == old["id"] and params["data_sha256"] == data_sha
