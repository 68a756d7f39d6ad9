"""The promotion gate: the champion alias moves only to a model that beats the incumbent.

The incumbent is re-evaluated on the new model's folds and data (its own feature spec and
hyperparameters, refitted per fold), so a different feature set or data version never lets a
new model skip the comparison.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from sklearn.base import clone
from sklearn.pipeline import Pipeline

from pipeline.data.inputs import Inputs, load_inputs, store_inputs
from pipeline.domain import Fold, LoadedModel, PriceSource, PriceStore
from pipeline.errors import StockpipeError
from pipeline.evaluation.report import evaluate
from pipeline.features.spec import FeaturesConfig, build_feature_defs
from pipeline.model.fitting import fit_owned
from pipeline.settings import PromotionConfig, StrategyConfig, TuningConfig
from pipeline.training.dataset import TrainingSet, build_training_set
from pipeline.training.stopping import checkpoint
from pipeline.training.tuning import objective_value


@dataclass(frozen=True)
class Decision:
    """Whether the new version becomes champion, and a sentence saying why."""

    promoted: bool
    reason: str
    incumbent_version: str | None = None
    incumbent_value: float | None = None
    forced: bool = False


def registered_training_set(
    model: LoadedModel,
    source: PriceSource,
    benchmark: PriceSource | None,
    store: PriceStore,
    horizon: int,
) -> tuple[TrainingSet, list[tuple[str, object]], Inputs]:
    """A loaded model's own features on the current data, and its unfitted tail steps."""
    steps = getattr(model.raw, "steps", None)
    if not steps or steps[0][0] != "features":
        raise StockpipeError("not a stockpipe pipeline (no leading 'features' step)")
    features = steps[0][1]
    spec = FeaturesConfig.model_validate_json(features.spec)
    columns = tuple(features.get_feature_names_out())
    inputs = load_inputs(spec.benchmark, source, benchmark)
    store_inputs(store, inputs)
    data = build_training_set(inputs.history(store), build_feature_defs(spec), columns, horizon)
    return data, steps[1:], inputs


def refit_per_fold(
    steps: list[tuple[str, object]], data: TrainingSet, folds: list[Fold]
) -> list[np.ndarray]:
    """Out-of-sample predictions of a clone of ``steps`` refitted on each fold's train rows
    (fitted in place on the fold's copy: the same bits as ``Pipeline.fit``)."""
    predictions = []
    for fold in folds:
        checkpoint()  # the gate's refits are long: a stop request ends the job between them
        train, test = data.masks(fold)
        tail, _ = fit_owned(clone(Pipeline(steps)).steps, data.X[train], data.y[train])
        predictions.append(np.asarray(tail.predict(data.X[test]), dtype=float))
    return predictions


def incumbent_value(
    tuning: TuningConfig,
    strategy: StrategyConfig,
    horizon: int,
    model: LoadedModel,
    folds: list[Fold],
    source: PriceSource,
    benchmark: PriceSource | None,
    store: PriceStore,
) -> float:
    """The incumbent's primary metric (mean over the given folds), refitted per fold."""
    data, steps, _ = registered_training_set(model, source, benchmark, store, horizon)
    predictions = refit_per_fold(steps, data, folds)
    per_fold = [
        evaluate(data.out_of_sample([f], [p]), strategy, horizon)
        for f, p in zip(folds, predictions, strict=True)
    ]
    return objective_value(per_fold, tuning.primary_metric, tuning.resolved_direction)


def decide(
    tuning: TuningConfig,
    gate: PromotionConfig,
    new_value: float,
    incumbent: str | None,
    incumbent_score: float | None,
    force: bool,
    problem: str | None = None,
) -> Decision:
    """Compare on the primary metric in its direction, with the configured margin.

    ``problem`` says why the incumbent could not be re-evaluated (then it is kept).
    """
    metric = tuning.primary_metric
    if force:
        versus = (
            "" if incumbent_score is None else f" vs incumbent v{incumbent} {incumbent_score:.6g}"
        )
        reason = f"promotion forced with --force-promote ({metric} {new_value:.6g}{versus})"
        return Decision(True, reason, incumbent, incumbent_score, forced=True)
    if incumbent is None:
        return Decision(True, f"no incumbent champion; first model ({metric} {new_value:.6g})")
    if not gate.enabled:
        return Decision(
            True, "promotion gate disabled in training.yaml", incumbent, incumbent_score
        )
    if problem is not None or incumbent_score is None:
        return Decision(
            False,
            f"incumbent v{incumbent} could not be re-evaluated on the new "
            f"folds ({problem}); kept it, use --force-promote to override",
            incumbent,
        )
    return _compare(tuning, gate, new_value, incumbent, incumbent_score)


def _compare(
    tuning: TuningConfig, gate: PromotionConfig, new_value: float, incumbent: str, score: float
) -> Decision:
    """The challenger against an incumbent re-evaluated on the same folds."""
    metric, direction = tuning.primary_metric, tuning.resolved_direction
    if not math.isfinite(new_value):
        return Decision(False, f"new {metric} is undefined", incumbent, score)
    gain = (1.0 if direction == "maximize" else -1.0) * (new_value - score)
    versus = f"on {metric}: {new_value:.6g} vs {score:.6g} ({direction})"
    if gain > gate.min_improvement:
        reason = f"beat incumbent v{incumbent} {versus}, better by {gain:.6g} on the same folds"
        return Decision(True, reason, incumbent, score)
    reason = (
        f"did not beat incumbent v{incumbent} {versus} on the same folds, margin required "
        f"> {gate.min_improvement:g}"
    )
    return Decision(False, reason, incumbent, score)
