"""Reading docker-compose.yml and mutating it, for the compose tests (test_compose*.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import yaml
from support import REPO

COMPOSE = REPO / "docker-compose.yml"
Compose = dict[str, Any]


def load_compose() -> Compose:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict), "docker-compose.yml is not a mapping"
    return data


def services(compose: Compose) -> dict[str, Any]:
    return compose.get("services") or {}


def set_at(path: str, value: Any) -> Callable[[Compose], None]:
    """Mutation that sets compose[path] (dot-separated keys, numeric list indices; None deletes)."""

    def mutate(c: Compose) -> None:
        *parents, last = path.split(".")
        node: Any = c
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        if isinstance(node, list):
            node[int(last)] = value
        elif value is None:
            del node[last]
        else:
            node[last] = value

    return mutate
