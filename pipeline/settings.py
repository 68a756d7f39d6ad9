"""Typed, frozen configuration models. Code below the CLI only ever sees these, never dicts."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    field_validator,
    model_validator,
)

from pipeline.features.spec import FeaturesConfig, declared_families

AUTO = "__AUTO__"
SQLITE = "sqlite:///"


def absolute_sqlite_uri(uri: str, base: Path) -> str:
    """``uri`` with a relative sqlite file made absolute against ``base``; others unchanged."""
    if not uri.startswith(SQLITE) or uri.startswith(SQLITE + "/"):
        return uri
    return SQLITE + str((base / uri[len(SQLITE) :]).resolve())


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ContractConfig(_Frozen):
    """Data-contract policy: what blocks a job and what only warns."""

    missing: Literal["error", "drop"] = "error"
    max_abs_log_return: float = Field(0.5, gt=0, description="warn above (unadjusted split?)")
    max_gap_business_days: StrictInt = Field(5, ge=1, description="warn on longer gaps")
    max_staleness_days: StrictInt | None = Field(None, ge=0, description="warn if last date older")


class FetchConfig(_Frozen):
    """yfinance downloads (always daily bars; the retry backoff is a constant of the source)."""

    start: dt.date | None = None
    end: dt.date | None = None
    retries: StrictInt = Field(3, ge=0)
    timeout_seconds: float = Field(20.0, gt=0)

    @model_validator(mode="after")
    def _range(self) -> FetchConfig:
        if self.start is not None and self.end is not None and self.start > self.end:
            raise ValueError(f"start {self.start} is after end {self.end}")
        return self


class DataConfig(_Frozen):
    """Where prices come from and where the embedded warehouse lives."""

    source: Literal["file", "snapshots"] = "file"
    path: Path = Path("data/sample/NVDA.csv")
    tickers: tuple[str, ...] | None = None
    columns: dict[str, str] = Field(
        default_factory=dict, description="file header -> date/open/high/low/close/adj_close/..."
    )
    adjustment: Literal["adjusted", "raw"] = "adjusted"
    contract: ContractConfig = ContractConfig()
    raw_dir: Path = Path("data/raw")
    snapshot: str | None = Field(None, description="pin one snapshot id (train/score)")
    fetch: FetchConfig = FetchConfig()
    benchmark_path: Path | None = Field(
        None, description="Price file of the market family's benchmark ticker (e.g. SPY)"
    )
    warehouse: Path = Path("data/warehouse/stockpipe.duckdb")
    short_history: Literal["error", "skip"] = Field(
        "error",
        description="A ticker with less history than the model needs: refuse the job (error) "
        "or leave the ticker out with a warning that says so (skip)",
    )

    @field_validator("tickers")
    @classmethod
    def _tickers(cls, tickers: tuple[str, ...] | None) -> tuple[str, ...] | None:
        """The one ticker rule of files and the API: ``[nvda, " spy"]`` is (NVDA, SPY)."""
        from pipeline.data.tickers import normalise_tickers

        return None if tickers is None else normalise_tickers(tickers)


Horizon = Annotated[StrictInt, Field(ge=1, le=250)]


class TargetConfig(_Frozen):
    """The forward log returns to predict: one model per horizon (the direct strategy).

    ``horizon: 5`` is shorthand for ``horizons: [5]``. The first horizon listed is the primary
    one: its model keeps ``tracking.registered_model`` as its name, the others get ``_h<h>``.
    """

    horizons: tuple[Horizon, ...] = Field((1,), min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _one_horizon(cls, data: object) -> object:
        if isinstance(data, dict) and "horizon" in data:
            if "horizons" in data:
                raise ValueError("give target.horizon or target.horizons, not both")
            data = {**data, "horizons": [data["horizon"]]}
            del data["horizon"]
        return data

    @model_validator(mode="after")
    def _distinct(self) -> TargetConfig:
        if len(set(self.horizons)) != len(self.horizons):
            raise ValueError(f"horizons must be distinct, got {list(self.horizons)}")
        return self

    @property
    def horizon(self) -> int:
        """The primary horizon (the only one of a single-horizon config)."""
        return self.horizons[0]


class SelectionConfig(_Frozen):
    """Which features enter the model and how the in-pipeline selector trims them."""

    features: Literal["__AUTO__"] | tuple[str, ...] = "__AUTO__"
    exclude: tuple[str, ...] = ()
    selector: Literal["none", "variance", "kbest", "from_model", "rfecv"] = "kbest"
    k: StrictInt | Literal["all"] = 10
    score_func: Literal["f_regression", "mutual_info_regression"] = "f_regression"
    variance_threshold: float = Field(0.0, ge=0)
    importance_threshold: str | float = "median"
    importance_params: dict[str, Any] = Field(
        default_factory=lambda: {"n_estimators": 100, "num_leaves": 15},
        description="from_model: the LightGBM whose importances select the features",
    )
    rfecv_params: dict[str, Any] = Field(
        default_factory=dict, description="rfecv: parameters of rfecv_estimator"
    )
    rfecv_estimator: Literal["ridge", "lightgbm"] = "ridge"
    rfecv_splits: StrictInt = Field(3, ge=2)
    rfecv_step: StrictInt = Field(1, ge=1)
    rfecv_min_features: StrictInt = Field(3, ge=1)


class IntervalsConfig(_Frozen):
    """Conformal prediction intervals around every prediction (``lower_80``, ``upper_80``, ...).

    Calibrated on out-of-sample walk-forward residuals only (see
    :mod:`pipeline.evaluation.intervals`). With ``scale_feature`` set (adaptive) each residual
    is divided by that feature's value on its row, so a band's width follows the volatility
    known at prediction time; with null it is plain split conformal (one width for all rows).
    ``levels: []`` turns intervals off.
    """

    levels: tuple[float, ...] = Field(
        (0.8, 0.95), description="Nominal coverages, whole percents: 0.8 names lower_80/upper_80"
    )
    scale_feature: str | None = Field(
        None, description="A feature the model computes (e.g. rolling_std_logret_1_20); null: split"
    )

    @field_validator("levels")
    @classmethod
    def _levels(cls, levels: tuple[float, ...]) -> tuple[float, ...]:
        outside = [x for x in levels if not 0.0 < x < 1.0]
        if outside:
            raise ValueError(f"levels must lie strictly between 0 and 1, got {list(outside)}")
        # Columns and metric keys are named by the level in whole percents (lower_80).
        fractional = [x for x in levels if abs(x * 100 - round(x * 100)) > 1e-9]
        if fractional:
            raise ValueError(f"levels must be whole percents such as 0.8 or 0.95: {fractional}")
        if list(levels) != sorted(set(levels)):
            raise ValueError(f"levels must be sorted and unique, got {list(levels)}")
        return levels

    @property
    def kind(self) -> Literal["split", "scaled"]:
        """``scaled`` (adaptive) with a scale feature, ``split`` without."""
        return "split" if self.scale_feature is None else "scaled"


class ModelConfig(_Frozen):
    target: TargetConfig = TargetConfig()
    features: FeaturesConfig = FeaturesConfig()
    selection: SelectionConfig = SelectionConfig()
    imputer: Literal["mean", "median"] = "median"
    scaler: Literal["standard", "none"] = "standard"
    intervals: IntervalsConfig = IntervalsConfig()
    # One model instead of model_candidates.yaml: its kind, fixed params and optional space.
    estimator: EstimatorKind | None = None
    params: dict[str, Scalar] = {}
    space: dict[str, ParamSpace] = {}

    @field_validator("features", mode="before")
    @classmethod
    def _declared(cls, data: object) -> object:
        return declared_families(data)  # a file's features are what it names, never none

    def single_candidate(self) -> CandidatesConfig | None:
        """The competition of one model that ``estimator`` names (None when it names none)."""
        if self.estimator is None:
            return None
        # Its budget; training.n_trials (or --trials) overrides it, as for every candidate.
        trials = 10 if self.space else 1
        one = CandidateConfig(
            name=self.estimator,
            estimator=self.estimator,
            n_trials=trials,
            params=self.params,
            space=self.space,
        )
        return CandidatesConfig(candidates=(one,))


class FoldsConfig(_Frozen):
    """Walk-forward folds over the trading calendar; never a shuffled split."""

    scheme: Literal["expanding", "sliding"] = "expanding"
    n_folds: StrictInt = Field(5, ge=2)
    test_size: StrictInt = Field(250, ge=1)
    step: StrictInt | None = Field(None, ge=1, description="Days between test starts; >= test_size")
    purge: StrictInt = Field(1, ge=0)
    embargo: StrictInt = Field(0, ge=0)
    min_train_size: StrictInt = Field(500, ge=10)
    max_train_size: StrictInt | None = Field(None, ge=10)

    @model_validator(mode="after")
    def _step(self) -> FoldsConfig:
        if self.step is not None and self.step < self.test_size:
            raise ValueError("step must be >= test_size: test windows may not overlap")
        if self.scheme == "sliding" and self.max_train_size is None:
            raise ValueError("scheme 'sliding' needs max_train_size")
        return self


class StrategyConfig(_Frozen):
    """How predictions become positions for the backtest, and what trading costs."""

    mode: Literal["long_flat", "long_short"] = "long_flat"
    threshold: float = Field(0.0, ge=0)
    cost_bps: float = Field(5.0, ge=0)
    periods_per_year: float = Field(252.0, gt=0)
    bootstrap_samples: StrictInt = Field(1000, ge=100)


class PortfolioConfig(_Frozen):
    """The cross-sectional top/bottom-k portfolio of a panel's backtest (two or more tickers).

    On each rebalance date the ``top_k`` highest predictions are bought and the ``bottom_k``
    lowest sold short (long-only with ``bottom_k: 0``); the long book sums to +1 and the short
    book to -1. See :mod:`pipeline.evaluation.portfolio` for clamping, holding and costs.
    """

    top_k: StrictInt = Field(5, ge=1)
    bottom_k: StrictInt = Field(5, ge=0)
    weighting: Literal["equal", "score"] = "equal"
    rebalance_days: StrictInt = Field(
        1, ge=1, description="Rounded up to a multiple of the horizon"
    )
    cost_bps: float = Field(5.0, ge=0, description="Cost per unit of turnover, in basis points")


MINIMIZE = frozenset({"rmse", "mae", "mape", "max_drawdown", "annual_volatility", "turnover"})
PrimaryMetric = Literal[
    "rmse",
    "mae",
    "mape",
    "r2",
    "directional_accuracy",
    "ic",
    "rank_ic",
    "sharpe",
    "sortino",
    "calmar",
    "total_return",
    "annual_return",
    "hit_rate",
    "max_drawdown",
]


class TuningConfig(_Frozen):
    """How the competition searches: objective, pruning, study storage and parallelism."""

    primary_metric: PrimaryMetric = "rmse"
    direction: Literal["auto", "minimize", "maximize"] = "auto"
    pruner: Literal["none", "median", "percentile"] = "median"
    pruner_startup_trials: StrictInt = Field(5, ge=0)
    pruner_warmup_folds: StrictInt = Field(1, ge=0)
    pruner_percentile: float = Field(25.0, gt=0, lt=100)
    storage: str | None = Field(
        None, description="None = in memory; a journal file path; or a postgresql:// URL"
    )
    study_name: str | None = None
    n_jobs: StrictInt = Field(1, ge=1)
    fold_jobs: StrictInt | None = Field(
        None,
        ge=1,
        description="folds fitted at once per trial; None = auto: cores / n_jobs, fewer for a "
        "large feature matrix (each thread copies its fold's rows)",
    )
    wait_for_workers_seconds: float = Field(600.0, ge=0)

    def fold_workers(self, n_folds: int) -> int:
        """Threads fitting one trial's folds (results do not depend on it, only speed)."""
        jobs = self.fold_jobs or max(1, (os.cpu_count() or 1) // self.n_jobs)
        return max(1, min(jobs, n_folds))

    @property
    def resolved_direction(self) -> Literal["minimize", "maximize"]:
        if self.direction != "auto":
            return self.direction
        return "minimize" if self.primary_metric in MINIMIZE else "maximize"

    @model_validator(mode="after")
    def _no_sqlite(self) -> TuningConfig:
        if self.storage and self.storage.startswith("sqlite"):
            raise ValueError(
                "storage: SQLite locks under parallel workers; use a journal file path "
                "(e.g. outputs/optuna.journal) or a postgresql:// URL"
            )
        return self


class PromotionConfig(_Frozen):
    """The gate a new model must pass before the champion alias moves to it."""

    enabled: bool = True
    min_improvement: float = Field(
        0.0, ge=0, description="Required margin on the primary metric, in its own units"
    )
    challenger_alias: str = "challenger"


class TrainingConfig(_Frozen):
    folds: FoldsConfig = FoldsConfig()
    strategy: StrategyConfig = StrategyConfig()
    portfolio: PortfolioConfig = PortfolioConfig()
    tuning: TuningConfig = TuningConfig()
    promotion: PromotionConfig = PromotionConfig()
    seed: StrictInt = Field(
        42, ge=0, le=2**32 - 1, description="numpy and Optuna take 32-bit seeds"
    )
    n_trials: StrictInt | None = Field(None, ge=1, description="Overrides every candidate's budget")
    summary_path: Path = Path("outputs/train_summary.json")


class IntSpace(_Frozen):
    type: Literal["int"]
    low: StrictInt
    high: StrictInt
    step: StrictInt = 1
    log: bool = False


class FloatSpace(_Frozen):
    type: Literal["float"]
    low: float
    high: float
    step: float | None = None
    log: bool = False


class CategoricalSpace(_Frozen):
    type: Literal["categorical"]
    choices: tuple[str | int | float | bool | None, ...]


ParamSpace = Annotated[IntSpace | FloatSpace | CategoricalSpace, Field(discriminator="type")]
Scalar = str | int | float | bool | None


EstimatorKind = Literal["lightgbm", "xgboost", "random_forest", "ridge", "elasticnet"]


class CandidateConfig(_Frozen):
    name: str
    estimator: EstimatorKind
    enabled: bool = True
    n_trials: StrictInt = Field(10, ge=1)
    timeout_seconds: float | None = Field(None, gt=0)
    params: dict[str, Scalar] = {}
    space: dict[str, ParamSpace] = {}
    early_stopping_rounds: StrictInt | None = Field(
        None,
        ge=1,
        description="boosted kinds: stop after this many rounds without a better "
        "validation loss; the registered model refits with the folds' median best round count",
    )
    validation_days: StrictInt = Field(
        63,
        ge=1,
        description="early stopping: last trading days of each fold's training window "
        "that validate (purged by the horizon from the rows that fit)",
    )

    @model_validator(mode="after")
    def _check_space(self) -> CandidateConfig:
        for key, space in self.space.items():
            if isinstance(space, IntSpace | FloatSpace) and space.low > space.high:
                raise ValueError(f"space.{key}: low > high")
        return self

    @model_validator(mode="after")
    def _check_early_stopping(self) -> CandidateConfig:
        if self.early_stopping_rounds is None:
            return self
        if self.estimator not in ("lightgbm", "xgboost"):
            raise ValueError(
                f"early_stopping_rounds: estimator '{self.estimator}' is not boosted "
                "(lightgbm and xgboost can stop early)"
            )
        if self.params.get("boosting_type") == "rf":
            raise ValueError(
                "early_stopping_rounds: a random forest (boosting_type: rf) is not boosted"
            )
        return self


class CandidatesConfig(_Frozen):
    candidates: tuple[CandidateConfig, ...]

    @model_validator(mode="after")
    def _unique(self) -> CandidatesConfig:
        names = [c.name for c in self.candidates]
        if len(set(names)) != len(names):
            raise ValueError(f"candidate names must be unique, got {names}")
        if not any(c.enabled for c in self.candidates):
            raise ValueError("at least one candidate must be enabled")
        return self


ModelConfig.model_rebuild()  # its single-model fields use the candidate types above


class TrackingConfig(_Frozen):
    uri: str = "sqlite:///mlruns/mlflow.db"
    artifact_location: Path = Path("mlruns/artifacts")
    experiment: str = "stockpipe"
    registered_model: str = "StocksPredictionModel"
    champion_alias: str = "champion"
    trial_artifacts: bool = Field(
        True, description="each trial run logs trial/oos.parquet (its folds' rows and metrics)"
    )

    @property
    def champion_uri(self) -> str:
        """The default model of score, serve and backtest: the champion alias's version."""
        return f"models:/{self.registered_model}@{self.champion_alias}"


class ServingConfig(_Frozen):
    """Bounds of the online service (every request is limited in size, breadth and time) and
    how often it polls the registry to follow its model's alias."""

    max_body_bytes: int = Field(16 * 1024 * 1024, ge=1024, description="larger bodies get 413")
    max_tickers: int = Field(100, ge=1, description="distinct tickers per request (else 422)")
    max_bars_per_ticker: int = Field(5000, ge=1, description="bars per ticker (else 422)")
    max_concurrent_predictions: int = Field(4, ge=1, description="more waiting gets 503")
    request_timeout_seconds: float = Field(30.0, gt=0, description="slower predictions get 504")
    reload_interval_seconds: float = Field(
        30.0, gt=0, description="how often `serve` asks the registry where its alias points"
    )
    # None here (no auth unless configured): an app built in code, a test, does not depend on
    # the shell's environment; conf/base/serving.yaml names STOCKPIPE_API_TOKEN.
    api_token_env: str | None = Field(
        None,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="environment variable holding the API token; when it is set and not "
        "empty, /predict, /model and /metrics need `Authorization: Bearer <token>`",
    )


class MonitoringConfig(_Frozen):
    """`stockpipe monitor`: the recent window, drift thresholds and the live-performance band.

    Drift (``detector: novelty``, the default): an input warns or alerts on a day when at
    least ``run_days`` of the last ``run_window`` days lie outside its training range by more
    than ``warn_margin`` / ``alert_margin`` range widths (see pipeline/monitoring/novelty.py;
    the margins were chosen by the detector benchmark). With ``detector: psi`` (and for
    versions whose profile predates format 2): a feature's PSI warns above ``psi_warn`` and
    alerts above ``psi_alert``; with
    ``calibrated`` (the default) it must also exceed the largest PSI that windows of the same
    length show within the training rows themselves to warn, and ``null_alert_factor`` times
    that to alert, since a 60-day window of a slow feature covers few bins without any drift. Live
    directional accuracy and IC warn below the ``band_warn_quantile`` and alert below the
    ``band_alert_quantile`` of the backtest's bootstrap distribution at the live sample size.
    """

    window: StrictInt = Field(60, ge=2, description="recent trading days compared with training")
    output_dir: Path = Path("outputs/monitor")
    detector: Literal["novelty", "psi"] = Field(
        "novelty", description="novelty: training range + run rule; psi: calibrated PSI"
    )
    warn_margin: float = Field(0.1, ge=0, description="excess (range widths) a warn day needs")
    alert_margin: float = Field(0.25, ge=0, description="excess an alert day needs")
    run_days: StrictInt = Field(3, ge=1, description="flagged days needed ...")
    run_window: StrictInt = Field(5, ge=1, description="... among this many last days")
    psi_warn: float = Field(0.1, gt=0)
    psi_alert: float = Field(0.25, gt=0)
    calibrated: bool = Field(True, description="thresholds also beat the training windows' PSI")
    null_alert_factor: float = Field(
        2.0, ge=1, description="alert above this multiple of the training windows' largest PSI"
    )
    min_rows: StrictInt = Field(20, ge=2, description="fewer realised predictions: 'insufficient'")
    rolling_window: StrictInt = Field(20, ge=2, description="dates per point of the rolling DA/IC")
    band_samples: StrictInt = Field(1000, ge=100, description="stationary-bootstrap resamples")
    band_warn_quantile: float = Field(0.05, gt=0, lt=0.5)
    band_alert_quantile: float = Field(0.01, gt=0, lt=0.5)

    @model_validator(mode="after")
    def _ordered(self) -> MonitoringConfig:
        if self.psi_warn > self.psi_alert:
            raise ValueError("psi_warn must be <= psi_alert")
        if self.band_alert_quantile > self.band_warn_quantile:
            raise ValueError("band_alert_quantile must be <= band_warn_quantile")
        if self.warn_margin > self.alert_margin:
            raise ValueError("warn_margin must be <= alert_margin")
        if self.run_days > self.run_window:
            raise ValueError("run_days must be <= run_window")
        return self


class RetrainConfig(_Frozen):
    """When `stockpipe cycle` retrains (see :class:`OperationsConfig`)."""

    every_days: StrictInt = Field(
        20,
        ge=1,
        description="retrain when the last retrain (promoted or not) used data ending this "
        "many trading days or more before the as-of date",
    )
    on_alert: bool = Field(
        True,
        description="also retrain when `monitor` alerts, once per alert episode (a challenger "
        "that lost the gate does not bring a retrain every evening after it)",
    )


class OperationsConfig(_Frozen):
    """`stockpipe cycle`, one evening's work: where new prices come from, when to retrain,
    and where each evening's record (and the lock) is kept."""

    ingest: Literal["file", "fetch"] = Field(
        "file",
        description="without --data: re-read data.path (file) or download each ticker's bars "
        "since its last stored date through yfinance (fetch)",
    )
    retrain: RetrainConfig = RetrainConfig()
    records_dir: Path = Field(
        Path("outputs/cycles"), description="<as-of>.json per evening, and the cycle lock"
    )


class StockpipeConfig(_Frozen):
    """The whole validated configuration plus where it was read from."""

    project_root: Path
    config_dir: Path
    env: str | None = None
    data: DataConfig
    model: ModelConfig
    training: TrainingConfig
    candidates: CandidatesConfig
    """The competition: model_candidates.yaml, or the one model that model.yaml's
    ``estimator`` names (which wins over the file: it is the more specific choice)."""
    tracking: TrackingConfig
    serving: ServingConfig = ServingConfig()
    monitoring: MonitoringConfig = MonitoringConfig()
    operations: OperationsConfig = OperationsConfig()

    @model_validator(mode="before")
    @classmethod
    def _single_model(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        model = data.get("model")
        if isinstance(model, dict):
            model = ModelConfig.model_validate(model)
        one = model.single_candidate() if isinstance(model, ModelConfig) else None
        if one is not None:
            return {**data, "candidates": one}
        if data.get("candidates") is None:
            raise ValueError(
                "nothing to train: add model_candidates.yaml, or name one `estimator` (with "
                "`params`, optionally a `space`) in model.yaml"
            )
        return data

    @model_validator(mode="after")
    def _folds_cover_horizons(self) -> StockpipeConfig:
        h = max(self.model.target.horizons)
        if self.training.folds.test_size < h:
            raise ValueError(f"training.folds.test_size must be >= the longest horizon ({h})")
        return self

    @property
    def horizons(self) -> tuple[int, ...]:
        return self.model.target.horizons

    def registered_model_for(self, horizon: int) -> str:
        """The registered model of one horizon: the configured name for the primary horizon
        (so a single-horizon config is unchanged), ``<name>_h<h>`` for the others."""
        name = self.tracking.registered_model
        return name if horizon == self.model.target.horizon else f"{name}_h{horizon}"

    def for_horizon(self, horizon: int) -> StockpipeConfig:
        """This configuration narrowed to one horizon: its target, its registered model, and
        folds purged by at least the horizon (an ``h``-day label reaches ``h`` days ahead)."""
        if horizon not in self.horizons:
            raise ValueError(f"horizon {horizon} is not configured (horizons {self.horizons})")
        folds = self.training.folds
        return self.model_copy(
            update={
                "model": self.model.model_copy(
                    update={"target": TargetConfig(horizons=(horizon,))}
                ),
                "training": self.training.model_copy(
                    update={"folds": folds.model_copy(update={"purge": max(folds.purge, horizon)})}
                ),
                "tracking": self.tracking.model_copy(
                    update={"registered_model": self.registered_model_for(horizon)}
                ),
            }
        )

    def resolve(self, path: Path) -> Path:
        """Resolve a config-relative path against the project root."""
        return path if path.is_absolute() else (self.project_root / path).resolve()

    @property
    def stage_aliases(self) -> dict[str, str]:
        """``models:/Name/<Stage>`` -> alias (MLflow 3 has aliases, not stages): derived from
        the two configured aliases, so a renamed champion or challenger is followed."""
        return {
            "Production": self.tracking.champion_alias,
            "Staging": self.training.promotion.challenger_alias,
        }

    @property
    def tracking_uri(self) -> str:
        """Tracking URI with a relative sqlite path made absolute (against the project)."""
        return absolute_sqlite_uri(self.tracking.uri, self.project_root)
