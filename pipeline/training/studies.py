"""Optuna studies as data and storage: search spaces, pruners and where studies live.

Studies live in memory, in a journal file or in a database, so they can be resumed and shared
by several worker processes; a coordinator waits for the trials other workers are running.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from pipeline.settings import CategoricalSpace, FloatSpace, IntSpace, ParamSpace, TuningConfig


def param_sampler(space: Mapping[str, ParamSpace]) -> Callable[[optuna.Trial], dict[str, Any]]:
    """Turn a declarative search space into a ``trial -> params`` function."""

    def sample(trial: optuna.Trial) -> dict[str, Any]:
        params: dict[str, Any] = {}
        for name, spec in space.items():
            if isinstance(spec, IntSpace):
                params[name] = trial.suggest_int(
                    name, spec.low, spec.high, step=spec.step, log=spec.log
                )
            elif isinstance(spec, FloatSpace):
                params[name] = trial.suggest_float(
                    name, spec.low, spec.high, step=spec.step, log=spec.log
                )
            elif isinstance(spec, CategoricalSpace):
                params[name] = trial.suggest_categorical(name, list(spec.choices))
        return params

    return sample


def make_storage(spec: str | None, root: Path) -> optuna.storages.BaseStorage | None:
    """None keeps the study in memory; a URL is an RDB; anything else is a journal file."""
    if spec is None:
        return None
    if "://" in spec:
        from sqlalchemy.exc import IntegrityError, ProgrammingError

        try:
            return optuna.storages.RDBStorage(spec, heartbeat_interval=60, grace_period=120)
        except (IntegrityError, ProgrammingError):
            # Several processes creating the schema of an empty database at once collide;
            # the loser finds the tables made by the winner on a second try.
            time.sleep(1.0)
            return optuna.storages.RDBStorage(spec, heartbeat_interval=60, grace_period=120)
    from optuna.storages.journal import JournalFileBackend

    path = Path(spec) if Path(spec).is_absolute() else root / spec
    path.parent.mkdir(parents=True, exist_ok=True)
    return optuna.storages.JournalStorage(JournalFileBackend(str(path)))


def make_pruner(cfg: TuningConfig) -> optuna.pruners.BasePruner:
    """The configured pruner; it stops a trial whose running fold mean is hopeless."""
    if cfg.pruner == "none":
        return optuna.pruners.NopPruner()
    if cfg.pruner == "percentile":
        return optuna.pruners.PercentilePruner(
            cfg.pruner_percentile,
            n_startup_trials=cfg.pruner_startup_trials,
            n_warmup_steps=cfg.pruner_warmup_folds,
        )
    return optuna.pruners.MedianPruner(
        n_startup_trials=cfg.pruner_startup_trials, n_warmup_steps=cfg.pruner_warmup_folds
    )


def wait_for_running(study: optuna.Study, seconds: float) -> None:
    """Let other workers finish the trials they are running before picking the best."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        # A trial whose worker died stops its heartbeat; mark it failed instead of waiting.
        with contextlib.suppress(Exception), warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
        if not any(t.state == TrialState.RUNNING for t in study.get_trials(deepcopy=False)):
            return
        time.sleep(0.5)
