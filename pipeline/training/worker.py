"""The `worker` use case: join a competition's shared study from any machine.

A worker computes the same training set and folds locally from the same config and data, then
runs trials on each enabled candidate's study until the study's budget is reached. Only the
coordinating `train` logs to MLflow and registers; workers write trials to the study storage.
"""

from __future__ import annotations

import logging
import os

import optuna
from optuna.trial import FrozenTrial

from pipeline.domain import DataPorts
from pipeline.errors import ConfigError
from pipeline.settings import StockpipeConfig
from pipeline.training.plan import plan_training
from pipeline.training.tuning import TuningContext, entrants, open_study, run_trials

log = logging.getLogger(__name__)


def run_worker(cfg: StockpipeConfig, ports: DataPorts, study_name: str) -> dict[str, int]:
    """Run trials for every enabled candidate of ``study_name``; return trials run per one."""
    tuning = cfg.training.tuning
    if tuning.storage is None:
        raise ConfigError(
            "training.yaml: key 'tuning.storage': a worker needs a shared study storage "
            "(a journal file path or a postgresql:// URL), not the in-memory default"
        )
    cfg = _horizon_of_study(cfg, study_name)
    plan = plan_training(  # the coordinator's plan, recomputed
        cfg.model,
        cfg.training.folds,
        cfg.data.short_history,
        ports.source,
        ports.benchmark,
        ports.store,
    )
    ctx = TuningContext.from_config(
        cfg.model, cfg.training, cfg.project_root, plan.data, plan.folds
    )
    ran: dict[str, int] = {}
    for cand, budget in entrants(cfg.candidates, cfg.training.n_trials):
        # A distinct sampler seed per worker process, derived from the configured seed.
        study = open_study(cand, ctx, study_name, sampler_seed=cfg.training.seed + os.getpid())
        mine: list[int] = []

        def count(_study: optuna.Study, trial: FrozenTrial, mine: list[int] = mine) -> None:
            mine.append(trial.number)  # called in this process only: our own trials

        run_trials(cand, ctx, study, budget, [count])
        ran[cand.name] = len(mine)
        log.info("worker: %s ran %d trial(s) in %s.%s", cand.name, len(mine), study_name, cand.name)
    return ran


def _horizon_of_study(cfg: StockpipeConfig, study_name: str) -> StockpipeConfig:
    """With several horizons `train` tunes one study per horizon, named ``<study>_h<h>``: a
    worker joining one must build that horizon's target and folds."""
    if len(cfg.horizons) == 1:
        return cfg
    head, _, tail = study_name.rpartition("_h")
    if not head or not tail.isdigit() or int(tail) not in cfg.horizons:
        raise ConfigError(
            f"study {study_name!r}: with several horizons {list(cfg.horizons)} the studies are "
            "named <study>_h<horizon>; join one of those"
        )
    return cfg.for_horizon(int(tail))
