"""Issue 10 regressions for `train`: nothing is written before the job is known to work.

The use case runs against a real in-memory DuckDB, real Optuna and real models, with the
hand-written tracking and registry fakes; the CLI tests use real files and a real sqlite
MLflow store path that must stay absent when a job is refused.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner, Result
from fakes import FakeRegistry, FakeTracker, train_ports
from support import REPO, SAMPLE, nvda_rows, overlay, write_csv, write_yaml

from pipeline.cli import main
from pipeline.config import load_config
from pipeline.data.readers import FileSource
from pipeline.data.snapshots import SnapshotStore
from pipeline.errors import DataError
from pipeline.training.train import train


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def traces(tmp_path: Path) -> list[str]:
    """What a refused job must not have created (the conf_dir fixture's stores)."""
    paths = ("warehouse.duckdb", "mlflow.db", "summary.json", "artifacts", "data/raw")
    return [p for p in paths if (tmp_path / p).exists()]


def test_short_ticker_is_refused_by_default_naming_rows(conf_dir: Path, tmp_path: Path) -> None:
    panel = write_csv(pl.concat([nvda_rows(), nvda_rows(30, "TINY")]), tmp_path / "panel.csv")
    tracker, registry = FakeTracker(), FakeRegistry()
    snaps = SnapshotStore(tmp_path / "raw")
    cfg = load_config(conf_dir)
    p = train_ports(panel, tracker=tracker, registry=registry, snapshots=snaps)
    with pytest.raises(DataError, match=r"TINY has 30 row\(s\); need 3\d\d per ticker") as err:
        train(cfg, p)
    assert "short_history: skip" in str(err.value)
    assert tracker.runs == [] and registry.registered == {} and snaps.entries() == []
    with pytest.raises(DataError):  # the warehouse was never written
        p.store.history(("NVDA",))


@pytest.mark.slow
def test_short_ticker_skipped_is_not_recorded_as_trained_on(conf_dir: Path, tmp_path: Path) -> None:
    overlay(conf_dir, "data", short_history="skip")
    cfg = load_config(conf_dir)
    panel = write_csv(pl.concat([nvda_rows(), nvda_rows(30, "TINY")]), tmp_path / "panel.csv")
    registry = FakeRegistry()
    summary = train(cfg, train_ports(panel, registry=registry))
    assert summary["data"]["tickers"] == ["NVDA"]
    need = summary["data"]["skipped_tickers"]["TINY"]["needed"]
    assert summary["data"]["skipped_tickers"] == {"TINY": {"rows": 30, "needed": need}}
    tags = registry.registered["1"]["tags"]
    assert tags["tickers"] == "NVDA" and tags["skipped_tickers"] == "TINY"


@pytest.mark.parametrize("rows", [1, 50, 300])
def test_too_short_file_is_refused_before_anything_is_written(
    conf_dir: Path, tmp_path: Path, rows: int
) -> None:
    data = write_csv(nvda_rows(rows).drop("ticker"), tmp_path / "NVDA.csv")
    result = invoke("train", "--config", str(conf_dir), "--data", str(data), "--quiet")
    assert result.exit_code == 2, result.output
    assert f"NVDA has {rows} row(s)" in result.output and "Traceback" not in result.output
    assert traces(tmp_path) == []


def test_explicit_folds_that_do_not_fit_are_refused_before_writing(
    conf_dir: Path, tmp_path: Path
) -> None:
    write_yaml(
        conf_dir / "local" / "training.yaml",
        {"n_trials": 1, "folds": {"n_folds": 5, "test_size": 250}},
    )
    data = write_csv(nvda_rows(1000).drop("ticker"), tmp_path / "NVDA.csv")
    result = invoke("train", "--config", str(conf_dir), "--data", str(data), "--quiet")
    assert result.exit_code == 2, result.output
    assert "not enough history for 5 folds" in result.output
    assert traces(tmp_path) == []


def test_validate_reports_whether_the_config_can_train(conf_dir: Path, tmp_path: Path) -> None:
    short = write_csv(nvda_rows(300).drop("ticker"), tmp_path / "NVDA.csv")
    refused = invoke("validate", "--config", str(conf_dir), "--data", str(short))
    assert refused.exit_code == 2
    assert "cannot train" in refused.output and "NVDA has 300 row(s)" in refused.output
    ok = invoke("validate", "--config", str(conf_dir))
    assert ok.exit_code == 0, ok.output
    assert "trainable:" in ok.output and "folds: 5 of 250 test days" in ok.output
    assert traces(tmp_path) == []


def test_unwritable_summary_fails_before_any_work(conf_dir: Path, tmp_path: Path) -> None:
    bad = "/sys/stockpipe-not-writable/summary.json"  # not writable, even by root
    result = invoke("train", "--config", str(conf_dir), "--summary", bad, "--quiet")
    assert result.exit_code == 2 and "not writable" in result.output, result.output
    assert "Traceback" not in result.output and traces(tmp_path) == []


@pytest.mark.parametrize(
    ("flag", "value"), [("--trials", "0"), ("--trials", "-1"), ("--seed", "-5"), ("--n-jobs", "0")]
)
def test_cli_overrides_are_validated_like_yaml(
    conf_dir: Path, tmp_path: Path, flag: str, value: str
) -> None:
    result = invoke("train", "--config", str(conf_dir), flag, value, "--quiet")
    assert result.exit_code == 2, result.output
    assert f"{flag}: Input should be greater than or equal to" in result.output
    assert traces(tmp_path) == []


def test_unknown_log_level_is_a_usage_error() -> None:
    result = invoke("--log-level", "FOO", "validate")
    assert result.exit_code == 2 and "Invalid value for '--log-level'" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


class CrashingRegistry(FakeRegistry):
    """A registry whose process dies between registering a version and moving its alias."""

    def set_alias(self, alias: str, version: str, record: bool = False) -> None:
        raise KeyboardInterrupt("killed")


@pytest.mark.slow
def test_kill_between_register_and_alias_leaves_no_promoted_version(
    conf_dir: Path,
) -> None:
    cfg = load_config(conf_dir)
    registry = CrashingRegistry()
    with pytest.raises(KeyboardInterrupt):
        train(cfg, train_ports(registry=registry))
    (doc,) = registry.registered.values()
    assert doc["tags"]["promoted"] == "false" and doc["tags"]["gate_passed"] == "true"
    assert registry.aliases == {}


@pytest.mark.slow
def test_promoted_tag_follows_the_alias(conf_dir: Path) -> None:
    cfg = load_config(conf_dir)
    registry = FakeRegistry()
    train(cfg, train_ports(registry=registry))
    assert registry.aliases == {"champion": "1"}
    assert registry.registered["1"]["tags"]["promoted"] == "true"


@pytest.mark.slow
def test_benchmark_file_is_kept_as_a_snapshot(conf_dir: Path, tmp_path: Path) -> None:
    cfg = load_config(conf_dir)
    snaps = SnapshotStore(tmp_path / "raw")
    summary = train(cfg, train_ports(snapshots=snaps))
    by_ticker = {s.ticker: s for s in snaps.entries()}
    assert set(by_ticker) == {"NVDA", "SPY"}
    assert by_ticker["SPY"].params["role"] == "benchmark"
    assert summary["lineage"]["benchmark_snapshot_ids"] == by_ticker["SPY"].id
    spy = snaps.load([by_ticker["SPY"]]).frame
    assert spy.height == FileSource(SAMPLE / "SPY.csv").load().frame.height


@pytest.mark.slow
def test_shipped_budgets_are_trials_and_a_timeout_that_cuts_is_reported(
    conf_dir: Path,
) -> None:
    shipped = load_config(REPO / "conf")
    assert all(c.timeout_seconds is None for c in shipped.candidates.candidates)
    write_yaml(
        conf_dir / "local" / "model_candidates.yaml",
        {
            "candidates": [
                {
                    "name": "ridge",
                    "estimator": "ridge",
                    "n_trials": 50,
                    "timeout_seconds": 0.01,
                    "space": {"alpha": {"type": "float", "low": 0.1, "high": 10.0}},
                },
            ]
        },
    )
    write_yaml(conf_dir / "local" / "training.yaml", {"n_trials": None})
    cfg = load_config(conf_dir)
    tracker = FakeTracker()
    summary = train(cfg, train_ports(tracker=tracker))
    (cand,) = summary["candidates"]
    assert cand["timed_out"] is True and cand["budget"] == 50 and cand["n_trials"] < 50
    assert summary["timed_out"] == ["ridge"]
    child = next(r for r in tracker.runs if r.name == "ridge")
    assert child.tags["timed_out"] == "true" and child.tags["budget"] == "50"


class RacingRegistry(FakeRegistry):
    """Another train moves the champion alias while this one is being judged."""

    def version_for_alias(self, alias: str) -> str | None:
        found = super().version_for_alias(alias)
        if alias != "champion":
            return found
        # The champion is read by the identical-retrain check, then by the gate, then once
        # more just before the alias would move: the other job promotes its version between
        # the gate's read and that last one.
        self.champion_reads = getattr(self, "champion_reads", 0) + 1
        if self.champion_reads == 3:
            self.registered["9"] = {"uri": "x", "run_id": "r", "tags": {}, "description": ""}
            self.aliases[alias] = "9"
            return "9"
        return found


@pytest.mark.slow
def test_concurrent_promotion_does_not_overwrite_a_newer_champion(conf_dir: Path) -> None:
    cfg = load_config(conf_dir)
    registry = RacingRegistry()
    summary = train(cfg, train_ports(registry=registry))
    champ = summary["champion"]
    assert champ["promoted"] is False and "champion moved to v9" in champ["reason"]
    assert registry.aliases["champion"] == "9" and champ["alias"] == "challenger"


def test_fetch_dates_are_validated_like_yaml(conf_dir: Path) -> None:
    args = ("fetch", "--config", str(conf_dir), "--tickers", "NVDA")
    result = invoke(*args, "--start", "2024-01-02", "--end", "2023-01-02")
    assert result.exit_code == 2 and "start 2024-01-02 is after end 2023-01-02" in result.output
