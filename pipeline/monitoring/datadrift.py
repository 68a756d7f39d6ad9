"""The data-drift section: every model input and the predictions, recent window vs profile."""

from __future__ import annotations

import numpy as np

from pipeline.monitoring.drift import finite, ks_test, psi
from pipeline.monitoring.profile import Reference, ReferenceProfile
from pipeline.monitoring.recent import RecentWindow
from pipeline.monitoring.report import Drift, DriftSection, level, worst
from pipeline.settings import MonitoringConfig


def thresholds(
    ref: Reference, window: int, cfg: MonitoringConfig
) -> tuple[float, float, int | None]:
    """(warn above, alert above, calibration window) for one input's PSI.

    The configured floors, raised when calibrated to what windows of this length show inside
    the training rows: above their largest PSI warns, above ``null_alert_factor`` times it
    alerts. Why a factor: a training history of T days holds only about T / window
    independent windows, so their maximum is roughly their 1 - window / T quantile (97% for
    2,000 days and 60-day windows) and a quiet window exceeds it a few percent of the time
    per input; with ~40 inputs that would alert on most quiet runs. On simulated random walks
    (2,000 training days, the shipped features) twice the maximum alerted in 1 run of 40,
    the maximum itself in 11, while tripled volatility still alerted every volatility input.
    """
    null = ref.null_for(window) if cfg.calibrated else None
    if null is None:
        return cfg.psi_warn, cfg.psi_alert, None
    alert = max(cfg.psi_alert, cfg.null_alert_factor * null.max)
    return max(cfg.psi_warn, null.max), alert, null.window


def input_drift(
    ref: Reference | None, recent: np.ndarray, window: int, cfg: MonitoringConfig, eps: float
) -> tuple[Drift, int | None]:
    """One input's drift and the calibration window it was judged with."""
    if ref is None:
        return Drift(status="unavailable", reason="never defined on the training rows"), None
    values = finite(recent)
    if values.size == 0:
        return Drift(status="unavailable", reason="no finite value in the recent window"), None
    value = psi(ref.bins.shares(values), ref.shares, eps)
    ks_stat, ks_p = ks_test(values, ref.sample)
    warn, alert, null_window = thresholds(ref, window, cfg)
    drift = Drift(
        status=level(value, warn, alert),
        psi=value,
        ks_statistic=ks_stat,
        ks_pvalue=ks_p,
        n=int(values.size),
        warn_above=warn,
        alert_above=alert,
    )
    return drift, null_window


def drift_section(
    profile: ReferenceProfile | None,
    recent: RecentWindow,
    cfg: MonitoringConfig,
    missing: str = "no reference profile",
) -> DriftSection:
    """Drift of every model input and of the predictions; ``unavailable`` without a profile
    (``missing`` says why)."""
    if profile is None:
        return DriftSection(status="unavailable", window=recent.days, reason=missing)
    features: dict[str, Drift] = {}
    windows: set[int] = set()
    for j, name in enumerate(recent.columns):
        if name not in profile.features:
            features[name] = Drift(status="unavailable", reason="not in the reference profile")
            continue
        drift, null = input_drift(
            profile.features[name], recent.X[:, j], recent.days, cfg, profile.eps
        )
        features[name] = drift
        windows |= {null} if null is not None else set()
    if profile.predictions is None:
        predictions = Drift(status="unavailable", reason="no backtest predictions in the profile")
    else:
        predictions, _ = input_drift(
            profile.predictions, recent.predictions, recent.days, cfg, profile.eps
        )
    # An input that cannot be judged (never defined) does not make the section unjudged.
    judged = [d.status for d in (*features.values(), predictions) if d.status != "unavailable"]
    return DriftSection(
        status=worst(judged) if judged else "unavailable",
        window=recent.days,
        null_window=max(windows) if windows else None,
        features=features,
        predictions=predictions,
    )
