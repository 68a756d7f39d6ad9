"""The data-drift section: every model input, the monitored data columns and the predictions,
recent window against the version's reference profile.

Each input is judged per ticker (its rows in date order against the ticker's own training
range, or the pooled one) by :func:`pipeline.monitoring.novelty.judge`; its status is the
worst ticker's, and the tickers at that status are named. PSI and the KS test are computed on
the pooled window for readers who expect them; they set the status only for profiles written
before the detector existed (format 1) or with ``monitoring.detector: psi``.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from pipeline.monitoring.drift import finite, ks_test, psi
from pipeline.monitoring.novelty import Range, Verdict, judge
from pipeline.monitoring.profile import Reference, ReferenceProfile
from pipeline.monitoring.recent import RecentWindow
from pipeline.monitoring.report import SEVERITY, Drift, DriftSection, Status, level, worst
from pipeline.settings import MonitoringConfig


def thresholds(
    ref: Reference, window: int, cfg: MonitoringConfig
) -> tuple[float, float, int | None]:
    """(warn above, alert above, calibration window) for one input's PSI (detector psi).

    The configured floors, raised when calibrated to what windows of this length show inside
    the training rows: above their largest PSI warns, above ``null_alert_factor`` times it
    alerts. The detector benchmark shows why this is no longer the default: PSI saturates once
    a window sits in an extreme bin, and over a long history some window always did.
    """
    null = ref.null_for(window) if cfg.calibrated else None
    if null is None:
        return cfg.psi_warn, cfg.psi_alert, None
    alert = max(cfg.psi_alert, cfg.null_alert_factor * null.max)
    return max(cfg.psi_warn, null.max), alert, null.window


def _per_ticker(
    ref: Reference, values: np.ndarray, recent: RecentWindow, cfg: MonitoringConfig
) -> dict[str, tuple[Verdict, Range, np.ndarray]] | None:
    """Each ticker's verdict on its rows (date order), its range and its dates; None when the
    profile has no range (format 1)."""
    out = {}
    for ticker in np.unique(recent.tickers):
        rng = ref.range_for(str(ticker))
        if rng is None:
            return None
        rows = np.flatnonzero(recent.tickers == ticker)
        rows = rows[np.argsort(recent.dates[rows], kind="stable")]
        verdict = judge(
            values[rows],
            rng,
            warn_margin=cfg.warn_margin,
            alert_margin=cfg.alert_margin,
            run_days=cfg.run_days,
            run_window=cfg.run_window,
        )
        out[str(ticker)] = (verdict, rng, recent.dates[rows])
    return out


def _novelty(verdicts: Mapping[str, tuple[Verdict, Range, np.ndarray]]) -> dict[str, object]:
    """The Drift fields the detector sets, from the per-ticker verdicts."""
    status = worst(v.status for v, _, _ in verdicts.values())
    at = {t: x for t, x in verdicts.items() if x[0].status == status}
    starts = [str(d[v.since]) for v, _, d in at.values() if v.since is not None]
    top = max(verdicts.values(), key=lambda x: x[0].max_excess)
    return {
        "status": status,
        "detector": "novelty",
        # The range of the ticker furthest outside: the one the message's numbers refer to.
        "training_low": top[1].low,
        "training_high": top[1].high,
        "days_beyond": max(v.days_beyond for v, _, _ in verdicts.values()),
        "max_excess": top[0].max_excess,
        "last_value": top[0].last_value,
        "since": min(starts) if starts else None,
        "tickers": sorted(at) if status in ("warn", "alert") else [],
    }


def input_drift(
    ref: Reference | None,
    recent: RecentWindow,
    values: np.ndarray,
    cfg: MonitoringConfig,
    eps: float,
) -> tuple[Drift, dict[str, Status], int | None]:
    """One input's drift, each ticker's status on it, and the PSI calibration window used."""
    if ref is None:
        return Drift(status="unavailable", reason="never defined on the training rows"), {}, None
    pooled = finite(values)
    if pooled.size == 0:
        return Drift(status="unavailable", reason="no finite value in the recent window"), {}, None
    value = psi(ref.bins.shares(pooled), ref.shares, eps)
    ks_stat, ks_p = ks_test(pooled, ref.sample)
    warn, alert, null_window = thresholds(ref, recent.days, cfg)
    common = {"psi": value, "ks_statistic": ks_stat, "ks_pvalue": ks_p, "n": int(pooled.size)}
    verdicts = _per_ticker(ref, values, recent, cfg) if cfg.detector == "novelty" else None
    if verdicts is None:
        status = level(value, warn, alert)
        drift = Drift(status=status, detector="psi", warn_above=warn, alert_above=alert, **common)
        return drift, {str(t): status for t in np.unique(recent.tickers)}, null_window
    fields = _novelty(verdicts)
    drift = Drift(**common, **fields)
    return drift, {t: v.status for t, (v, _, _) in verdicts.items()}, None


def message(name: str, d: Drift, window: int) -> str | None:
    """One line for an input at warn or alert: what moved, how far outside the training data,
    since when (and where); None otherwise."""
    if d.status not in ("warn", "alert"):
        return None
    if d.detector != "novelty":
        return f"{name}: {d.status}, PSI {d.psi:.3g} (alert above {d.alert_above:.3g})"
    where = f" in {', '.join(d.tickers)}" if d.tickers else ""
    return (
        f"{name}: {d.status}{where}, beyond its training range "
        f"[{d.training_low:.4g}, {d.training_high:.4g}] on {d.days_beyond} of the last "
        f"{window} days, up to {d.max_excess:.2f} range widths outside (now {d.last_value:.4g})"
        + (f", since {d.since}" if d.since else "")
    )


def drift_section(
    profile: ReferenceProfile | None,
    recent: RecentWindow,
    cfg: MonitoringConfig,
    missing: str = "no reference profile",
) -> DriftSection:
    """Drift of every model input, data column and of the predictions; ``unavailable``
    without a profile (``missing`` says why)."""
    if profile is None:
        return DriftSection(status="unavailable", window=recent.days, reason=missing)
    inputs: dict[str, tuple[Reference | None, np.ndarray]] = {
        name: (profile.features.get(name), recent.X[:, j]) for j, name in enumerate(recent.columns)
    }
    judged: dict[str, Drift] = {}
    tickers: dict[str, list[Status]] = {}
    windows: set[int] = set()
    extra = {n: (profile.data.get(n), v) for n, v in recent.data.items() if n in profile.data}
    for name, (ref, values) in {
        **inputs,
        **extra,
        "predictions": (profile.predictions, recent.predictions),
    }.items():
        drift, per_ticker, null = input_drift(ref, recent, values, cfg, profile.eps)
        if name in inputs and name not in profile.features:
            drift = Drift(status="unavailable", reason="not in the reference profile")
        if name == "predictions" and profile.predictions is None:
            drift = Drift(status="unavailable", reason="no backtest predictions in the profile")
        judged[name] = drift.model_copy(update={"message": message(name, drift, recent.days)})
        for t, s in per_ticker.items():
            tickers.setdefault(t, []).append(s)
        windows |= {null} if null is not None else set()
    return _section(judged, inputs, extra, tickers, windows, recent.days, cfg)


def _section(
    judged: dict[str, Drift],
    inputs: Mapping[str, object],
    extra: Mapping[str, object],
    tickers: dict[str, list[Status]],
    windows: set[int],
    days: int,
    cfg: MonitoringConfig,
) -> DriftSection:
    # An input that cannot be judged (never defined) does not make the section unjudged.
    statuses = [d.status for d in judged.values() if d.status != "unavailable"]
    flagged = sorted(
        (d for d in judged.values() if d.status in ("warn", "alert")),
        key=lambda d: -SEVERITY[d.status],
    )
    return DriftSection(
        status=worst(statuses) if statuses else "unavailable",
        window=days,
        detector=cfg.detector,
        **(
            {
                "warn_margin": cfg.warn_margin,
                "alert_margin": cfg.alert_margin,
                "run_days": cfg.run_days,
                "run_window": cfg.run_window,
            }
            if cfg.detector == "novelty"
            else {}
        ),
        null_window=max(windows) if windows else None,
        features={n: judged[n] for n in inputs},
        data={n: judged[n] for n in extra},
        predictions=judged["predictions"],
        tickers={t: worst(s) for t, s in sorted(tickers.items())},
        alerts=[d.message or "" for d in flagged],
    )
