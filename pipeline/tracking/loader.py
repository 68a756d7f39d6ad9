"""Loading a model by URI (``models:/Name@alias``, ``models:/Name/3``, ``models:/m-...``)."""

from __future__ import annotations

from typing import Any

from pipeline.errors import TrackingError
from pipeline.tracking.store import ensure_store


def _parse_registry_uri(uri: str) -> tuple[str, str | None, str | None] | None:
    """models:/Name@alias -> (Name, None, alias); models:/Name/3 -> (Name, '3', None)."""
    if not uri.startswith("models:/") or uri.startswith("models:/m-"):
        return None
    body = uri[len("models:/") :]
    if "@" in body:
        name, alias = body.split("@", 1)
        return name, None, alias
    name, _, version = body.partition("/")
    if not version:
        raise TrackingError(f"model URI {uri!r} needs a version or an alias (Name@alias)")
    return name, version, None


class MlflowModelLoader:
    """Loads a model by URI through pyfunc (schema-enforced) and reads its registry tags."""

    def __init__(self, uri: str) -> None:
        self.uri = uri

    def load(self, model_uri: str) -> Any:
        """The model behind ``model_uri`` as a LoadedModel; TrackingError if it cannot be."""
        import mlflow
        import mlflow.pyfunc
        from mlflow.exceptions import MlflowException

        from pipeline.domain import LoadedModel

        ensure_store(self.uri)
        mlflow.set_tracking_uri(self.uri)
        client = mlflow.MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)
        name = version = None
        tags: dict[str, str] = {}
        parsed = _parse_registry_uri(model_uri)
        try:
            if parsed is not None:
                name, version, alias = parsed
                mv = (
                    client.get_model_version_by_alias(name, alias)
                    if alias
                    else client.get_model_version(name, str(version))
                )
                version, tags = str(mv.version), dict(mv.tags)
            pyfunc_model = mlflow.pyfunc.load_model(model_uri)
        except MlflowException as exc:
            raise TrackingError(f"cannot load model {model_uri} from {self.uri}: {exc}") from exc
        raw = pyfunc_model.get_raw_model()
        features = getattr(raw, "named_steps", {}).get("features")
        warmup = int(tags.get("warmup_rows", getattr(features, "warmup_", 0)))
        horizon = int(tags["horizon"]) if "horizon" in tags else None
        return LoadedModel(
            predictor=pyfunc_model,
            name=name,
            version=version,
            warmup=warmup,
            horizon=horizon,
            benchmark=tags.get("benchmark") or None,
            raw=raw,
            tags=tags,
        )
