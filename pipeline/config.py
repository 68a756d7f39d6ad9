"""Configuration: YAML files validated once, at the edge, into frozen pydantic models.

Layout: ``conf/base/<section>.yaml`` is always read; ``conf/<env>/`` (``--env``) and then the
gitignored ``conf/local/`` are deep-merged over it. Every section file maps to one typed model.
Relative paths inside config files resolve against the project root (the parent of the config
directory), so ``stockpipe train --config conf/`` behaves the same from any working directory.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from pipeline.errors import ConfigError
from pipeline.settings import (
    CandidatesConfig,
    DataConfig,
    ModelConfig,
    MonitoringConfig,
    OperationsConfig,
    ServingConfig,
    StockpipeConfig,
    TrackingConfig,
    TrainingConfig,
    absolute_sqlite_uri,
)

SECTIONS: dict[str, type[BaseModel]] = {
    "data": DataConfig,
    "model": ModelConfig,
    "training": TrainingConfig,
    "model_candidates": CandidatesConfig,
    "tracking": TrackingConfig,
    "serving": ServingConfig,
    "monitoring": MonitoringConfig,
    "operations": OperationsConfig,
}
# Sections added after the first release: a config directory without their file gets defaults.
OPTIONAL_SECTIONS = frozenset({"serving", "monitoring", "operations"})
# Sections that may be absent altogether (the config then says what replaces them):
# without model_candidates.yaml, model.yaml names the one estimator to train.
ABSENT_SECTIONS = frozenset({"model_candidates"})


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from exc
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: expected a mapping at top level, got {type(loaded).__name__}")
    return loaded


# Keys a section's file must set although its model has a default (the default serves code
# building the model by hand, and would be a hidden choice in a file).
REQUIRED_KEYS = {"model": {"features": "declare the feature families the model computes"}}

# Keys that say the same thing: a layer setting one replaces the other from layers below
# (an overlay's `horizons: [1, 5]` over the base's `horizon: 1`).
SYNONYMS = {"horizon": "horizons", "horizons": "horizon"}


# Keys removed from the files (CHANGELOG.md): section -> dotted key -> what replaces it. An
# old file that still sets one is told what to do, not pydantic's "extra inputs are not
# permitted", which reads as a typo.
REMOVED_KEYS: dict[str, dict[str, str]] = {
    "data": {
        "fetch.interval": "fetch always downloads daily bars (1d); delete the key",
        "fetch.backoff_seconds": "retries wait 1, 2, 4, ... seconds (a constant); delete the "
        "key and keep fetch.retries",
    },
    "model": {
        "intervals.method": "intervals are always conformal (intervals.scale_feature chooses "
        "scaled or split); delete the key",
        "n_trials": "set n_trials in training.yaml or pass --trials N (it is the budget of "
        "the one model that model.yaml's estimator names)",
    },
    "tracking": {
        "stage_aliases": "models:/NAME/Production follows tracking.champion_alias and "
        "/Staging training.yaml's promotion.challenger_alias; rename those instead",
    },
}


def _has_key(doc: Mapping[str, Any], dotted: str) -> bool:
    """Whether the document sets the dotted key path (``fetch.interval``)."""
    node: Any = doc
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False
        node = node[part]
    return True


def _refuse_removed(name: str, path: Path, doc: Mapping[str, Any]) -> None:
    """ConfigError naming every removed key ``path`` still sets and what replaced it."""
    found = [
        f"{path}: key '{key}' was removed: {replacement} (see CHANGELOG.md)"
        for key, replacement in REMOVED_KEYS.get(name, {}).items()
        if _has_key(doc, key)
    ]
    if found:
        raise ConfigError("\n".join(found))


Provenance = dict[tuple[str, ...], Path]


def _deep_merge(
    base: dict[str, Any],
    over: Mapping[str, Any],
    origin: Path,
    prov: Provenance,
    at: tuple[str, ...] = (),
) -> dict[str, Any]:
    """``over`` merged into ``base``; ``prov`` records the file that set each key path."""
    merged = {k: v for k, v in base.items() if SYNONYMS.get(k) not in over}
    for key, value in over.items():
        here = (*at, key)
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value, origin, prov, here)
            continue
        # A replaced value takes its whole subtree with it: nothing below it is blamed on
        # the layer it replaced (a synonym's subtree goes too: `horizons` over `horizon`).
        for gone in [p for p in prov if p[: len(at) + 1] in (here, (*at, SYNONYMS.get(key)))]:
            del prov[gone]
        merged[key] = value
        prov[here] = origin
    return merged


def _merge(sources: list[tuple[Path, dict[str, Any]]]) -> tuple[dict[str, Any], Provenance]:
    """Deep-merge the layers in order; also return which file set each key path."""
    merged: dict[str, Any] = {}
    prov: Provenance = {}
    for path, doc in sources:
        merged = _deep_merge(merged, doc, path, prov)
    return merged, prov


def _user_key(doc: Mapping[str, Any], loc: tuple[int | str, ...], missing: bool) -> tuple[str, ...]:
    """The key path as the user wrote it, from a pydantic error location.

    pydantic adds steps the YAML does not have: union branches (``k.int``,
    ``k.literal['all']``), an index into the list that ``horizon: 0`` becomes, ``horizons``
    for ``horizon``. Only steps found in the document are kept (a missing field's own name
    too), so every branch of one bad value lands on the same key.
    """
    node: Any = doc
    kept: list[str] = []
    for i, part in enumerate(loc):
        name = SYNONYMS.get(str(part), str(part))
        if isinstance(node, Mapping) and (part in node or name in node):
            kept.append(str(part) if part in node else name)
            node = node[kept[-1]]
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            kept.append(str(part))
            node = node[part]
        elif missing and i == len(loc) - 1:
            kept.append(str(part))
    return tuple(kept)


def _blame(prov: Provenance, key: tuple[str, ...], files: list[Path]) -> Path:
    """The file that set ``key``: the last layer that set it or anything under it (a
    model-level rule on a mapping blames its latest edit), else the one that set its nearest
    parent; the base file for the section as a whole."""
    under = [f for p, f in prov.items() if key and p[: len(key)] == key]
    if under:
        return max(under, key=files.index)
    for n in range(len(key) - 1, 0, -1):
        if key[:n] in prov:
            return prov[key[:n]]
    return files[0]


def _format_errors(
    exc: ValidationError, merged: dict[str, Any], prov: Provenance, files: list[Path]
) -> str:
    """One line per bad key, naming the overlay file that introduced it.

    An error whose location is a parent of another error's (a tuple "too short after
    validation" because its item failed) is a consequence, not a second mistake: dropped.
    """
    errors = exc.errors()
    locs = [tuple(e["loc"]) for e in errors]
    lines: dict[tuple[Path, str], list[str]] = {}
    got_values: dict[tuple[Path, str], str] = {}  # the offending value, when it is short
    for err, loc in zip(errors, locs, strict=True):
        if any(len(o) > len(loc) and o[: len(loc)] == loc for o in locs):
            continue
        key = _user_key(merged, loc, err["type"] == "missing")
        blamed = _blame(prov, key, files)
        msgs = lines.setdefault((blamed, ".".join(key) or "<root>"), [])
        if err["msg"] not in msgs:
            msgs.append(err["msg"])
        got = err.get("input")
        if isinstance(got, str | int | float) and err["type"] != "extra_forbidden":
            got_values[(blamed, ".".join(key) or "<root>")] = f" (got {got!r})"
    # Several messages on one key are a union's branches: any one of them would do.
    return "\n".join(
        f"{f}: key '{k}': {'; or '.join(m)}{got_values.get((f, k), '')}"
        for (f, k), m in lines.items()
    )


def _folders(root_dir: Path, env: str | None) -> tuple[Path, list[Path]]:
    """base/ and the overlays merged over it, after checking they hold only known files."""
    base = root_dir / "base"
    if not base.is_dir():
        raise ConfigError(f"{base}: config directory not found (expected <config>/base/*.yaml)")
    overlays = [root_dir / env] if env else []
    if env and not overlays[0].is_dir():
        raise ConfigError(f"{overlays[0]}: environment '{env}' has no config directory")
    overlays.append(root_dir / "local")
    known = {f"{name}.yaml" for name in SECTIONS}
    for folder in [base, *overlays]:
        for stray in sorted(folder.glob("*.y*ml")) if folder.is_dir() else []:
            if stray.name not in known:
                raise ConfigError(f"{stray}: unknown config file; expected one of {sorted(known)}")
    return base, overlays


def _section(name: str, base: Path, overlays: list[Path]) -> BaseModel | None:
    """One section: its base file with every overlay deep-merged over it, validated."""
    model = SECTIONS[name]
    base_file = base / f"{name}.yaml"
    layers = [d / f"{name}.yaml" for d in overlays if (d / f"{name}.yaml").is_file()]
    if not base_file.is_file():
        # An optional section's overlay still applies without a base file (a config folder
        # made before the section existed, with conf/local/operations.yaml added).
        if name in OPTIONAL_SECTIONS and not layers:
            return model()
        if name in ABSENT_SECTIONS and not layers:
            return None
        if name not in ABSENT_SECTIONS | OPTIONAL_SECTIONS:
            raise ConfigError(f"{base_file}: required config file is missing")
    sources = [(f, _read_yaml(f)) for f in ([base_file] if base_file.is_file() else []) + layers]
    for path, doc in sources:  # per file, so the error names the layer that still has it
        _refuse_removed(name, path, doc)
    merged, prov = _merge(sources)
    for key, why in REQUIRED_KEYS.get(name, {}).items():
        if key not in merged:
            raise ConfigError(f"{sources[0][0]}: key '{key}': required ({why})")
    try:
        return model.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc, merged, prov, [f for f, _ in sources])) from exc


def load_config(config_dir: str | Path, env: str | None = None) -> StockpipeConfig:
    """Read, merge and validate every section under ``config_dir``.

    Raises ConfigError naming the file and key at fault.
    """
    root_dir = Path(config_dir).expanduser().resolve()
    base, overlays = _folders(root_dir, env)
    sections = {name: _section(name, base, overlays) for name in SECTIONS}
    try:
        return StockpipeConfig(
            project_root=root_dir.parent,
            config_dir=root_dir,
            env=env,
            data=sections["data"],
            model=sections["model"],
            training=sections["training"],
            candidates=sections["model_candidates"],
            tracking=sections["tracking"],
            serving=sections["serving"],
            monitoring=sections["monitoring"],
            operations=sections["operations"],
        )
    except ValidationError as exc:
        msgs = "; ".join(e["msg"] for e in exc.errors())
        raise ConfigError(f"{root_dir}: inconsistent configuration: {msgs}") from exc


# CLI flag -> (section, dotted key inside it); a flag is validated exactly like the YAML key.
FLAGS: dict[str, tuple[str, str]] = {
    "data": ("data", "path"),
    "snapshot": ("data", "snapshot"),
    "trials": ("training", "n_trials"),
    "seed": ("training", "seed"),
    "summary": ("training", "summary_path"),
    "n_jobs": ("training", "tuning.n_jobs"),
    "tracking_uri": ("tracking", "uri"),
    "start": ("data", "fetch.start"),
    "end": ("data", "fetch.end"),
    "window": ("monitoring", "window"),
}


def _flag_value(flag: str, value: Any) -> Any:
    # CLI paths are relative to the working directory, config paths to the project root.
    if isinstance(value, Path):
        return value.expanduser().resolve()
    if flag == "tracking_uri":
        return absolute_sqlite_uri(value, Path.cwd())
    return value


def apply_overrides(cfg: StockpipeConfig, **flags: Any) -> StockpipeConfig:
    """A new config with CLI flags applied and validated by the same models as the YAML.

    ``--trials 0`` is refused exactly as ``n_trials: 0`` would be, naming the flag.
    """
    # Only what was set, so that "the user left this unset" survives the flags.
    doc = cfg.model_dump(exclude_unset=True)
    for flag, value in flags.items():
        if value is None:
            continue
        section, key = FLAGS[flag]
        *parents, leaf = key.split(".")
        node = doc.setdefault(section, {})
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = _flag_value(flag, value)
        if flag == "data":
            doc["data"]["source"] = "file"
    try:
        return StockpipeConfig.model_validate(doc)
    except ValidationError as exc:
        raise ConfigError(_format_flag_errors(exc, flags)) from exc


def _format_flag_errors(exc: ValidationError, flags: Mapping[str, Any]) -> str:
    where = {FLAGS[f]: f for f, v in flags.items() if v is not None}
    lines = []
    for err in exc.errors():
        loc = tuple(str(p) for p in err["loc"])
        key = (loc[0], ".".join(loc[1:])) if loc else ("", "")
        flag = where.get(key)
        name = f"--{flag.replace('_', '-')}" if flag else ".".join(loc) or "<config>"
        lines.append(f"{name}: {err['msg']} (got {err.get('input')!r})")
    return "\n".join(lines)
