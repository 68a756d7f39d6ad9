"""Model URIs (issue 12): versions, aliases, Latest and stage names resolve on a real MLflow
sqlite registry; unknown ones are one clean error naming them."""

from __future__ import annotations

from typing import Any

import pytest
from support import fitted_model, sample_prices

from pipeline.errors import TrackingError
from pipeline.tracking.loader import STAGE_ALIASES, MlflowModelLoader
from pipeline.tracking.mlflow_adapter import MlflowRegistry, MlflowTracker
from pipeline.tracking.uris import parse_model_uri

pytestmark = pytest.mark.slow  # logs two real models (a few seconds each)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("uris")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    tracker = MlflowTracker(uri, "uris", root / "artifacts")
    reg = MlflowRegistry(uri, "M")
    fitted = fitted_model()
    model = fitted.predictor
    example = sample_prices("NVDA").tail(fitted.warmup + 5).to_pandas()
    for _ in range(2):
        with tracker.start_run("fit") as run:
            model_uri = run.log_model(model, example, {})
            reg.register(model_uri, run.run_id, {"promoted": "false", "horizon": "1"})
    reg.set_alias("champion", "1", record=True)
    reg.set_alias("challenger", "2")
    return {"uri": uri}


@pytest.mark.parametrize(
    ("model_uri", "version"),
    [
        ("models:/M/1", "1"),
        ("models:/M@champion", "1"),
        ("models:/M/Production", "1"),
        ("models:/M/production", "1"),
        ("models:/M/Staging", "2"),
        ("models:/M/Latest", "2"),
        ("models:/M@challenger", "2"),
    ],
)
def test_every_uri_form_resolves(registry: dict[str, Any], model_uri: str, version: str) -> None:
    loaded = MlflowModelLoader(registry["uri"], STAGE_ALIASES).load(model_uri)
    assert loaded.name == "M" and loaded.version == version and loaded.run_id


@pytest.mark.parametrize(
    ("model_uri", "message"),
    [
        ("models:/M/9", "registered model 'M' has no version 9"),
        ("models:/M@nope", "registered model 'M' has no alias 'nope'"),
        ("models:/Other/1", "no registered model named 'Other'"),
        ("models:/M/Archived", "'Archived' is not a version number, nor one of Latest"),
        ("models:/M", "needs a version, an alias"),
    ],
)
def test_unknown_uris_are_one_clean_error(
    registry: dict[str, Any], model_uri: str, message: str
) -> None:
    with pytest.raises(TrackingError, match=message):
        MlflowModelLoader(registry["uri"], STAGE_ALIASES).load(model_uri)


def test_stage_names_follow_the_configured_aliases() -> None:
    ref = parse_model_uri("models:/M/Production", {"Production": "live"})
    assert ref is not None and ref.alias == "live"
    assert parse_model_uri("models:/m-abc123", STAGE_ALIASES) is None  # a logged model
