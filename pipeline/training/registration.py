"""The end of a training job: the promotion gate, then registration and the alias move.

The gate judges the competition's winner against the incumbent champion re-evaluated on the
winner's own folds and data; the winner is registered whatever the verdict, and only the
alias it gets (champion or challenger) depends on it.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

from pipeline.data.inputs import LoadedSource
from pipeline.domain import Registry, Run
from pipeline.errors import StockpipeError
from pipeline.evaluation.report import fold_mean
from pipeline.evaluation.results import WalkForwardReport
from pipeline.monitoring.profile import PROFILE_TAG
from pipeline.settings import PromotionConfig, TrackingConfig, TrainingConfig
from pipeline.tracking.registry import intent_tags
from pipeline.training.competition import CompetitionResult
from pipeline.training.intervals import calibration_tags
from pipeline.training.job import TrainOptions, TrainPorts
from pipeline.training.plan import TrainingPlan
from pipeline.training.promotion import Decision, decide, incumbent_value
from pipeline.training.stopping import checkpoint

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Registered:
    """The version the winner was registered as, the alias it got and the run that made it."""

    model: str  # the registered model's name
    version: str | None  # None: not registered (`tune`, `train --no-register`)
    alias: str | None
    parent_run_id: str  # the training job's run
    logged_uri: str = ""  # the winner's logged model, which `--model-uri` can load

    @property
    def model_uri(self) -> str:
        return self.logged_uri if self.version is None else version_uri(self.model, self.version)

    @classmethod
    def not_registered(cls, model: str, parent: Run, comp: CompetitionResult) -> Registered:
        """The winner of a job that registers nothing: its logged model, no version, no alias."""
        parent.set_tags({"registered_version": "", "promoted": "False"})
        return cls(model, None, None, parent.run_id, comp.best.model_uri)


def version_uri(model: str, version: str) -> str:
    """The URI of one version of a registered model."""
    return f"models:/{model}/{version}"


def gate(
    tracking: TrackingConfig,
    training: TrainingConfig,
    ports: TrainPorts,
    plan: TrainingPlan,
    challenger: float,
    force: bool,
) -> Decision:
    """Decide whether the winner (``challenger``, its primary metric) becomes champion.

    An incumbent that cannot be re-evaluated is kept (the decision says why), unless forced;
    a promotion is withdrawn if the champion moved meanwhile (:func:`still_current`).
    """
    checkpoint()  # a stop request (SIGTERM) ends the job before the gate, not inside it
    incumbent = ports.registry.version_for_alias(tracking.champion_alias)
    score: float | None = None
    problem: str | None = None
    if incumbent is not None and not force and training.promotion.enabled:
        uri = version_uri(tracking.registered_model, incumbent)
        try:
            score = _incumbent_score(uri, training, ports, plan)
        except (StockpipeError, ValueError, KeyError) as exc:
            problem = str(exc)
    decision = decide(
        training.tuning, training.promotion, challenger, incumbent, score, force, problem
    )
    return still_current(tracking, ports.registry, decision)


def _incumbent_score(
    uri: str, training: TrainingConfig, ports: TrainPorts, plan: TrainingPlan
) -> float:
    """The incumbent's primary metric on the challenger's folds (raises if it cannot be had)."""
    horizon = plan.horizon
    if ports.loader is None:
        raise StockpipeError("no model loader configured")
    model = ports.loader.load(uri)
    if model.horizon not in (None, horizon):
        raise StockpipeError(f"it predicts horizon {model.horizon}, not {horizon}")
    # The incumbent is judged on the very batch the challenger trained on: no re-read (the
    # file could have changed since) and no second validation.
    bench = plan.inputs.benchmark_batch
    return incumbent_value(
        training.tuning,
        training.strategy,
        horizon,
        model,
        plan.folds,
        LoadedSource(plan.inputs.batch),
        LoadedSource(bench) if bench is not None else ports.benchmark,
        ports.store,
    )


def still_current(tracking: TrackingConfig, registry: Registry, decision: Decision) -> Decision:
    """Keep the gate honest against a concurrent train: if the champion alias moved while
    this job was being judged against the old incumbent, this job does not promote."""
    if not decision.promoted or decision.forced:
        return decision
    now = registry.version_for_alias(tracking.champion_alias)
    if now == decision.incumbent_version:
        return decision
    return dataclasses.replace(
        decision,
        promoted=False,
        reason=(
            f"the champion moved to v{now} while this model was judged against "
            f"v{decision.incumbent_version or 'none'}; kept v{now}: re-run train to compare "
            f"with it ({decision.reason})"
        ),
    )


# Lineage tags that make two trainings the same: same data and benchmark bytes, the same
# resolved configuration and seed, the same code and libraries.
IDENTITY_TAGS = (
    "data_sha256",
    "benchmark_sha256",
    "config_hash",
    "seed",
    "git_commit",
    "package_versions",
)


def identical_retrain(
    tracking: TrackingConfig,
    promotion: PromotionConfig,
    registry: Registry,
    parent: Run,
    comp: CompetitionResult,
    options: TrainOptions,
) -> tuple[Decision, Registered] | None:
    """The outcome of a retrain identical to the champion or the challenger, or None.

    A job on the same data, config, seed and code as the version an alias holds would only
    register a copy of it: it keeps that version instead and says so. None when the job
    registers nothing anyway, or --force-promote asks for a new version explicitly.
    """
    if not options.register or options.force_promote:
        return None
    aliases = (tracking.champion_alias, promotion.challenger_alias)
    same = _same_lineage(registry, aliases, comp.lineage)
    if same is None:
        return None
    version, alias = same
    reason = (
        f"identical retrain: v{version} (@{alias}) was trained on the same data, config, "
        "seed and code; not registered again"
    )
    log.info("%s: %s", tracking.registered_model, reason)
    parent.set_tags({"registered_version": "", "promoted": "False", "promotion_reason": reason})
    decision = Decision(False, reason, incumbent_version=version)
    return decision, Registered(tracking.registered_model, version, alias, parent.run_id)


def _same_lineage(
    registry: Registry, aliases: tuple[str, ...], lineage: dict[str, str]
) -> tuple[str, str] | None:
    """(version, alias) of the first alias whose version has ``lineage``'s identity tags."""
    want = {k: lineage.get(k) for k in IDENTITY_TAGS}
    for alias in aliases:
        version = registry.version_for_alias(alias)
        if version is not None:
            tags = registry.version_tags(version)
            if {k: tags.get(k) for k in IDENTITY_TAGS} == want:
                return version, alias
    return None


def register(
    tracking: TrackingConfig,
    promotion: PromotionConfig,
    registry: Registry,
    parent: Run,
    comp: CompetitionResult,
    decision: Decision,
    report: WalkForwardReport,
) -> Registered:
    """Register the winner, move its alias and record both on the job's ``parent`` run.

    Every version is registered with ``promoted=false``; the registry sets it to true only
    once the champion alias points at the version, so a kill in between never leaves a
    version that looks promoted without the alias. The version carries the lineage tags the
    winner's model was logged with, and the intent of this registration (the alias it is to
    get, the gate's verdict): a kill before the alias moves leaves it pending, and the next
    ``train`` or ``models list`` finishes or abandons it (``registry.settle_pending``).

    The job's last safe point for a stop request: once registration begins it completes.
    """
    checkpoint()
    best = comp.best
    alias = tracking.champion_alias if decision.promoted else promotion.challenger_alias
    intent = intent_tags(alias, decision.promoted, decision.incumbent_version)
    # reference_run_id: the run holding the monitoring profile and the backtest's files.
    tags = {
        **comp.lineage,
        **_version_tags(comp, decision, report),
        PROFILE_TAG: parent.run_id,
        **intent,
    }
    description = _description(comp, decision, report) + report_link(parent.run_id)
    version = registry.register(best.model_uri, best.run_id, tags, description)
    registry.set_alias(alias, version, record=decision.promoted)
    parent.set_tags(
        {
            "registered_version": version,
            "promoted": str(decision.promoted),
            "promotion_reason": decision.reason,
        }
    )
    return Registered(tracking.registered_model, version, alias, parent.run_id)


def _version_tags(
    comp: CompetitionResult, decision: Decision, report: WalkForwardReport
) -> dict[str, str]:
    best, primary = comp.best, comp.primary
    return {
        "candidate": best.name,
        "estimator": best.kind,
        "warmup_rows": str(best.warmup),
        "primary_metric": primary,
        primary: f"{best.best_value:.8g}",
        # The deflated Sharpe's N and V, so that `backtest` deflates by the same trials.
        "n_trials": str(report.n_trials),
        "trial_sharpe_var": repr(report.trial_sharpe_variance),
        "promoted": "false",
        "gate_passed": str(decision.promoted).lower(),
        "promotion_reason": decision.reason,
        "force_promote": str(decision.forced).lower(),
        # What `score` and `/predict` put bounds around predictions with (JSON).
        **calibration_tags(report),
    }


def _description(comp: CompetitionResult, decision: Decision, report: WalkForwardReport) -> str:
    best, mean = comp.best, fold_mean(report.folds)
    return (
        f"{best.name} ({best.kind}) from study {comp.study_name}: mean over "
        f"{len(report.folds)} folds rmse {_fmt(mean.rmse, '.6g')}, mae {_fmt(mean.mae, '.6g')}, "
        f"directional accuracy {_fmt(mean.directional_accuracy, '.4f')}; pooled strategy "
        f"sharpe {_fmt(report.sharpe, '.4g')}; {decision.reason}"
    )


def report_link(run_id: str) -> str:
    """Where the version's training report is (markdown; the MLflow UI renders descriptions):
    the run page in the UI, whose Artifacts tab renders report.html, and its artifact URI."""
    return (
        f"\n\nTraining report: [report.html on run {run_id}](#/runs/{run_id}) (Artifacts tab), "
        f"`runs:/{run_id}/report.html`"
    )


def _fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)
