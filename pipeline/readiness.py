"""`validate`'s readiness check: can this config train on this batch, here and now?

It probes the real warehouse and the tracking store, so it lives beside the composition root
(it builds its adapters through ``bootstrap``) and not in the training use cases: the plan it
runs is the pure one `train` runs (``plan_training``), computed in a scratch warehouse.
"""

from __future__ import annotations

from pathlib import Path

from pipeline import bootstrap
from pipeline.atomic import OutputError, ensure_writable
from pipeline.data.inputs import LoadedSource
from pipeline.data.warehouse import DuckDBStore
from pipeline.domain import PriceBatch, PriceSource
from pipeline.errors import TrackingUnavailableError
from pipeline.settings import StockpipeConfig
from pipeline.tracking.store import probe_server, sqlite_path
from pipeline.training.plan import plan_training, unused_selection_k
from pipeline.training.quality import quality_lines


def readiness(cfg: StockpipeConfig, batch: PriceBatch, benchmark: PriceSource | None) -> list[str]:
    """What `validate` adds to the contract: can this config train on this batch?

    Runs the same plan as `train` in a scratch in-memory warehouse, checks that the real
    warehouse reads back whole, that the summary can be written and that the tracking store
    can be reached, and writes nothing. Raises the error `train` would raise (with its exit
    code); returns human lines otherwise.
    """
    plan = plan_training(
        cfg.model,
        cfg.training.folds,
        cfg.data.short_history,
        LoadedSource(batch),
        benchmark,
        bootstrap.scratch_warehouse(),
    )
    warehouse = check_warehouse(cfg.resolve(cfg.data.warehouse))
    summary = ensure_writable(cfg.resolve(cfg.training.summary_path), "summary")
    uri = check_tracking(cfg.tracking_uri)
    return [
        *plan.describe(),
        *quality_lines(plan.data, plan.inputs),
        *unused_selection_k(cfg),
        warehouse,
        f"summary: {summary} (writable)",
        f"tracking: {uri} (reachable)",
    ]


def check_warehouse(path: Path) -> str:
    """Read every stored row of the warehouse, writing nothing, as `train` would find it.

    Raises WarehouseCorruptError (pointing to `stockpipe data rebuild`) for a damaged file,
    with the message `train` gives; a missing file is fine (train creates it).
    """
    if not path.exists():
        return f"warehouse: {path} (created on first use)"
    rows = DuckDBStore(path).verify()
    return f"warehouse: {path} ({rows} rows, readable)"


def check_tracking(uri: str) -> str:
    """Reach the tracking store the way `train` will; TrackingUnavailableError (exit 4, as
    in `train`) if it cannot be reached or created."""
    db = sqlite_path(uri)
    if db is not None:
        try:
            ensure_writable(db, "tracking store")
        except OutputError as exc:  # train fails here creating the store: exit 4, not 2
            raise TrackingUnavailableError(str(exc)) from exc
    elif uri.startswith(("http://", "https://")):
        probe_server(uri)
    return uri
