"""Conformal prediction intervals from out-of-sample residuals only.

Two methods, both calibrated on walk-forward residuals (never on the rows they are judged on):

- ``split``: the interval is ``prediction ± q``, with ``q`` the conformal quantile of the
  absolute residuals ``|y - y_hat|``.
- ``scaled`` (adaptive): residuals are divided by a causal volatility estimate ``sigma_t`` known
  at prediction time (a volatility feature of the model's own feature step), and the interval
  is ``prediction ± q * sigma_t``. When volatility changes, the width follows it, so coverage holds
  where a fixed width over- or under-covers.

For the walk-forward report, fold ``k`` is calibrated on the residuals of folds ``< k`` and its
coverage measured on its own test rows; the first fold has no calibration and is not scored.
The registered model is calibrated on every fold's residuals and carries the result as an
:class:`IntervalCalibration` (the registry tag ``intervals``), from which `score` and `/predict`
put ``lower_<level>`` / ``upper_<level>`` around each prediction.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from pydantic import BaseModel, ConfigDict, field_validator, model_validator

Float = NDArray[np.float64]
TAG = "intervals"  # the registered version's tag holding its IntervalCalibration as JSON


def level_key(level: float) -> str:
    """``0.8 -> "80"``: the level x 100 as an integer, as in ``lower_80`` and metrics keys."""
    return str(round(level * 100))


def conformal_quantile(scores: ArrayLike, level: float) -> float:
    """The ``ceil((n + 1) * level)``-th smallest score: finite-sample valid for exchangeable
    scores (inf when there are too few scores for the level)."""
    s = np.sort(np.asarray(scores, dtype=float).ravel())
    s = s[np.isfinite(s)]
    k = math.ceil((s.size + 1) * level)
    return float(s[k - 1]) if 1 <= k <= s.size else math.inf


def nonconformity(y_true: ArrayLike, y_pred: ArrayLike, scale: ArrayLike | None = None) -> Float:
    """``|y - y_hat|``, divided by ``scale`` for the scaled method (rows with scale <= 0 -> NaN)."""
    r = np.abs(np.asarray(y_true, dtype=float) - np.asarray(y_pred, dtype=float))
    if scale is None:
        return r
    s = np.asarray(scale, dtype=float)
    return np.where(s > 0, r / np.where(s > 0, s, 1.0), np.nan)


def bounds(y_pred: ArrayLike, q: float, scale: ArrayLike | None = None) -> tuple[Float, Float]:
    """Lower and upper bounds ``y_hat ∓ q`` (times ``scale`` for the scaled method)."""
    p = np.asarray(y_pred, dtype=float)
    half = q * (np.ones_like(p) if scale is None else np.asarray(scale, dtype=float))
    return p - half, p + half


def walk_forward_bounds(
    fold: ArrayLike,
    y_true: ArrayLike,
    y_pred: ArrayLike,
    level: float,
    scale: ArrayLike | None = None,
) -> tuple[Float, Float]:
    """Bounds for every row, each fold calibrated on the earlier folds' residuals only.

    Rows of the first fold (nothing earlier to calibrate on) get NaN bounds.
    """
    f = np.asarray(fold)
    p = np.asarray(y_pred, dtype=float)
    sc = None if scale is None else np.asarray(scale, dtype=float)
    scores = nonconformity(y_true, p, sc)
    lower, upper = np.full(p.shape, np.nan), np.full(p.shape, np.nan)
    for k in np.unique(f)[1:]:
        here = f == k
        q = conformal_quantile(scores[f < k], level)
        lo, hi = bounds(p[here], q, None if sc is None else sc[here])
        lower[here], upper[here] = lo, hi
    return lower, upper


def interval_metrics(
    y_true: ArrayLike, lower: ArrayLike, upper: ArrayLike, level: float
) -> dict[str, float]:
    """``coverage``, ``mean_width`` and the Winkler score (width plus ``2/alpha`` times the miss)
    over the rows with finite bounds; ``n`` is how many."""
    y = np.asarray(y_true, dtype=float)
    lo, hi = np.asarray(lower, dtype=float), np.asarray(upper, dtype=float)
    ok = np.isfinite(lo) & np.isfinite(hi) & np.isfinite(y)
    y, lo, hi = y[ok], lo[ok], hi[ok]
    if y.size == 0:
        return {"n": 0.0, "coverage": math.nan, "mean_width": math.nan, "winkler": math.nan}
    alpha = 1.0 - level
    penalty = (2.0 / alpha) * (np.maximum(lo - y, 0.0) + np.maximum(y - hi, 0.0))
    return {
        "n": float(y.size),
        "coverage": float(np.mean((y >= lo) & (y <= hi))),
        "mean_width": float(np.mean(hi - lo)),
        "winkler": float(np.mean(hi - lo + penalty)),
    }


def calibrate(
    y_true: ArrayLike, y_pred: ArrayLike, levels: Sequence[float], scale: ArrayLike | None = None
) -> dict[str, float]:
    """The quantile of every level over all residuals: what the registered model carries."""
    scores = nonconformity(y_true, y_pred, scale)
    return {level_key(level): conformal_quantile(scores, level) for level in levels}


def bound_columns(keys: Sequence[str]) -> list[str]:
    """``["80", "95"] -> [lower_80, upper_80, lower_95, upper_95]``: the output columns."""
    return [f"{side}_{key}" for key in keys for side in ("lower", "upper")]


class IntervalCalibration(BaseModel):
    """What a registered model carries to put intervals around its predictions.

    ``quantiles`` maps a level key (``"80"``) to the conformal quantile of every walk-forward
    fold's out-of-sample residuals (``None`` when there were too few for the level). The
    half-width of a band is that quantile, times the ``scale_feature``'s value on the
    prediction's row for the ``scaled`` method.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    method: Literal["split", "scaled"]
    scale_feature: str | None = None
    quantiles: dict[str, float | None]

    @field_validator("quantiles", mode="before")
    @classmethod
    def _finite(cls, value: Any) -> Any:
        # conformal_quantile says "too few residuals" with inf, which JSON cannot carry.
        if isinstance(value, Mapping):
            return {
                k: v if not isinstance(v, float) or math.isfinite(v) else None
                for k, v in value.items()
            }
        return value

    @model_validator(mode="after")
    def _consistent(self) -> IntervalCalibration:
        if (self.method == "scaled") != (self.scale_feature is not None):
            raise ValueError("a scale_feature is given for the scaled method, and only for it")
        keys = list(self.quantiles)
        if any(not k.isdigit() or not 0 < int(k) < 100 for k in keys) or keys != sorted(
            keys, key=int
        ):
            raise ValueError(f"quantiles must be keyed by ascending whole percents, got {keys}")
        if any(q is not None and q < 0 for q in self.quantiles.values()):
            raise ValueError("quantiles must be >= 0")
        return self

    @property
    def levels(self) -> tuple[float, ...]:
        """The nominal levels (``"80" -> 0.8``)."""
        return tuple(int(k) / 100 for k in self.quantiles)

    @property
    def columns(self) -> list[str]:
        """``lower_80, upper_80, ...``: what a prediction gains."""
        return bound_columns(list(self.quantiles))

    def to_tag(self) -> str:
        """The JSON stored as the registered version's ``intervals`` tag."""
        return self.model_dump_json()

    @classmethod
    def from_tags(
        cls, tags: Mapping[str, str], features: Sequence[str]
    ) -> IntervalCalibration | None:
        """The calibration in a version's ``tags`` (None for a model registered without one).

        ``features`` are the columns the model's feature step computes: a scale feature must
        be one of them. ValueError if the tag is not a valid calibration.
        """
        text = tags.get(TAG)
        if not text:
            return None
        calibration = cls.model_validate_json(text)
        if calibration.scale_feature is not None and calibration.scale_feature not in features:
            raise ValueError(
                f"scale feature {calibration.scale_feature!r} is not computed by the model's "
                f"feature step ({len(features)} columns)"
            )
        return calibration
