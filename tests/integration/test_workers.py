"""`stockpipe worker`: several processes share one competition's Optuna study (journal file).

Which process ran a trial is read from the journal itself: every operation carries the
worker id of the JournalStorage that wrote it (a uuid per process, plus the thread id).
"""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import optuna
import pytest
from click.testing import CliRunner
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState
from support import (
    SAMPLE,
    STUDY_LIGHTGBM,
    STUDY_RIDGE,
    make_project,
    shared_study_trials,
    spawn_stockpipe,
)

import pipeline.training.worker as worker_mod
from pipeline.bootstrap import apply_overrides, scratch_warehouse
from pipeline.cli import main
from pipeline.config import load_config
from pipeline.data.readers import FileSource
from pipeline.data.warehouse import DuckDBStore
from pipeline.domain import DataPorts
from pipeline.training.tuning import TuningContext, make_storage, open_study, run_trials

STUDY = "shared"


def _conf(root: Path, name: str, journal: Path | None, budget: int, cands: list[Any]) -> Path:
    """A config dir; each gets its own warehouse file."""
    tuning = {"storage": str(journal) if journal else None, "wait_for_workers_seconds": 60}
    return make_project(
        root,
        name,
        data={"warehouse": str(root / f"{name}.duckdb")},
        training={"n_trials": budget, "summary_path": str(root / "summary.json"), "tuning": tuning},
        candidates={"candidates": cands},
    )


def _wait(procs: list[subprocess.Popen[str]], timeout: float = 300) -> list[tuple[int, str, str]]:
    try:
        outs = [p.communicate(timeout=timeout) for p in procs]
    except subprocess.TimeoutExpired:
        for p in procs:
            p.kill()
        pytest.fail("a stockpipe process did not finish in time")
    return [(p.returncode, out, err) for p, (out, err) in zip(procs, outs, strict=True)]


def _finishers(journal: Path) -> dict[int, str]:
    """trial id -> process (JournalStorage uuid) that moved it to a finished state."""
    ops = [json.loads(line) for line in journal.read_text().splitlines() if line.strip()]
    return {
        op["trial_id"]: op["worker_id"].rsplit("-", 1)[0]
        for op in ops
        if op["op_code"] == 6 and TrialState(op["state"]).is_finished()
    }


def _ports() -> DataPorts:
    return DataPorts(
        source=FileSource(SAMPLE / "NVDA.csv"),
        store=DuckDBStore(":memory:"),
        benchmark=FileSource(SAMPLE / "SPY.csv"),
        workspace=scratch_warehouse,
    )


@pytest.mark.slow
def test_two_workers_and_coordinator_share_one_study(tmp_path: Path) -> None:
    budget, journal = 16, tmp_path / "studies.journal"
    coord, *workers = (
        _conf(tmp_path, f"conf{i}", journal, budget, [STUDY_LIGHTGBM, STUDY_RIDGE])
        for i in range(3)
    )
    summary = tmp_path / "summary.json"
    procs = [
        spawn_stockpipe(tmp_path, "worker", "--config", str(c), "--study", STUDY) for c in workers
    ]
    procs.append(
        spawn_stockpipe(tmp_path, "train", "--config", str(coord), "--study-name", STUDY, "--quiet")
    )
    results = _wait(procs)
    for code, out, err in results:
        assert code == 0, f"{out}\n{err}"
        assert "Traceback" not in err
    for _, out, _ in results[:2]:
        for name in ("lightgbm", "ridge"):
            assert f"{name}: ran " in out and f"trial(s) in {STUDY}.{name}" in out

    doc = json.loads(summary.read_text())
    storage = JournalStorage(JournalFileBackend(str(journal)))
    finisher = _finishers(journal)
    bests = {}
    for cand in doc["candidates"]:
        study = optuna.load_study(study_name=f"{STUDY}.{cand['name']}", storage=storage)
        trials = shared_study_trials(study, budget, cand["n_trials"])
        by_process = Counter(finisher[t._trial_id] for t in trials)  # journal's trial ids
        assert sum(by_process.values()) == len(trials) and len(by_process) <= 3
        params = [tuple(sorted(t.params.items())) for t in trials]
        assert len(set(params)) == len(params), "processes replayed each other's params"
        complete = [t.value for t in trials if t.state == TrialState.COMPLETE]
        assert cand["best_value"] == min(complete) == study.best_value
        bests[cand["name"]] = min(complete)
    champ = doc["champion"]
    assert champ["candidate"] == min(bests, key=bests.__getitem__)
    assert champ["primary_value"] == bests[champ["candidate"]]
    assert doc["n_trials"] == sum(c["n_trials"] for c in doc["candidates"])


def test_worker_without_shared_storage_fails_clearly(tmp_path: Path) -> None:
    conf = _conf(tmp_path, "conf", None, 2, [STUDY_RIDGE])
    result = CliRunner().invoke(main, ["worker", "--config", str(conf), "--study", STUDY])
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit)
    assert "key 'tuning.storage'" in result.output and "shared study storage" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "conf.duckdb").exists()  # failed before touching the warehouse


def test_worker_reports_only_its_own_trials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = load_config(_conf(tmp_path, "conf", tmp_path / "s.journal", 3, [STUDY_RIDGE]))

    def racing(
        cand: Any, ctx: TuningContext, study: optuna.Study, budget: int, callbacks: Any = ()
    ) -> None:
        # another process finishes one trial of the same study while this worker runs
        other = open_study(cand, ctx, STUDY)
        run_trials(cand, ctx, other, 1)
        run_trials(cand, ctx, study, budget, callbacks)

    monkeypatch.setattr(worker_mod, "run_trials", racing)
    ran = worker_mod.run_worker(cfg, _ports(), STUDY)
    assert ran == {"ridge": 2}  # budget 3, one of them run by the other process


def test_worker_processes_draw_different_params(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two worker processes on one study must not replay each other's start-up params."""
    cfg = load_config(_conf(tmp_path, "conf", tmp_path / "s.journal", 2, [STUDY_RIDGE]))
    for pid, budget in ((1001, 2), (1002, 4)):
        monkeypatch.setattr(worker_mod, "os", SimpleNamespace(getpid=lambda pid=pid: pid))
        ran = worker_mod.run_worker(apply_overrides(cfg, trials=budget), _ports(), STUDY)
        assert ran == {"ridge": 2}
    storage = make_storage(cfg.training.tuning.storage, cfg.project_root)
    alphas = [
        t.params["alpha"]
        for t in optuna.load_study(study_name=f"{STUDY}.ridge", storage=storage).trials
    ]
    assert len(alphas) == 4 and len(set(alphas)) == 4, alphas


@pytest.mark.slow
def test_worker_runs_next_to_a_process_holding_the_warehouse(tmp_path: Path) -> None:
    conf = _conf(tmp_path, "conf", tmp_path / "s.journal", 2, [STUDY_RIDGE])
    held = DuckDBStore(load_config(conf).data.warehouse)  # e.g. a running `train` that
    held.upsert(FileSource(SAMPLE / "NVDA.csv").load())  # has loaded its inputs
    try:
        [(code, _, err)] = _wait(
            [spawn_stockpipe(tmp_path, "worker", "--config", str(conf), "--study", STUDY)]
        )
    finally:
        held.close()
    assert code == 0 and "Traceback" not in err, err[-600:]
