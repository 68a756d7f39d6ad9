"""Model URIs, resolved in one place to a registered version.

Accepted: ``models:/Name/3`` (a version), ``models:/Name@alias``, ``models:/Name/Latest`` (the
highest version), and ``models:/Name/Production`` or ``/Staging``. MLflow 3 has no stages:
those two names map to aliases configured in ``tracking.yaml`` (``stage_aliases``; by
default Production -> champion, Staging -> challenger). ``models:/m-<id>`` (a logged model)
passes through unresolved.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pipeline.errors import TrackingError

PREFIX = "models:/"


@dataclass(frozen=True)
class ModelRef:
    """What a registry URI names: exactly one of version, alias or latest."""

    name: str
    version: str | None = None
    alias: str | None = None
    latest: bool = False


def parse_model_uri(uri: str, stage_aliases: Mapping[str, str]) -> ModelRef | None:
    """The registry reference in ``uri``; None for a logged model (``models:/m-...``)."""
    if not uri.startswith(PREFIX) or uri.startswith(PREFIX + "m-"):
        return None
    body = uri[len(PREFIX) :]
    if "@" in body:
        name, alias = body.split("@", 1)
        return ModelRef(name, alias=alias) if name and alias else _bad(uri, "empty name or alias")
    name, _, tail = body.partition("/")
    if not name or not tail:
        return _bad(uri, "it needs a version, an alias (Name@alias), Latest or a stage")
    stages = {k.lower(): v for k, v in stage_aliases.items()}
    if tail.lower() == "latest":
        return ModelRef(name, latest=True)
    if tail.lower() in stages:
        return ModelRef(name, alias=stages[tail.lower()])
    if tail.isdigit():
        return ModelRef(name, version=tail)
    known = ", ".join(["Latest", *stage_aliases])
    return _bad(uri, f"'{tail}' is not a version number, nor one of {known}")


def _bad(uri: str, why: str) -> ModelRef:
    raise TrackingError(f"model URI {uri!r}: {why}")


def resolve_version(client: Any, ref: ModelRef) -> Any:
    """The registry's ModelVersion for ``ref``; TrackingError naming what does not exist."""
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(ref.name)
    except MlflowException as exc:
        raise TrackingError(f"no registered model named '{ref.name}'") from exc
    if ref.latest:
        versions = client.search_model_versions(f"name='{ref.name}'")
        if not versions:
            raise TrackingError(f"registered model '{ref.name}' has no versions yet")
        return client.get_model_version(ref.name, str(max(int(v.version) for v in versions)))
    try:
        if ref.alias is not None:
            return client.get_model_version_by_alias(ref.name, ref.alias)
        return client.get_model_version(ref.name, str(ref.version))
    except MlflowException as exc:
        what = f"alias '{ref.alias}'" if ref.alias is not None else f"version {ref.version}"
        raise TrackingError(f"registered model '{ref.name}' has no {what}") from exc
