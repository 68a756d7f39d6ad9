"""Reading docker-compose.yml and mutating it, for the compose tests (test_compose*.py)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
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


class MissingVariableError(Exception):
    """A required ``${VAR:?message}`` (or ``${VAR?message}``) met an unset or empty VAR:
    compose stops there before it starts anything."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name


def interpolate(node: Any, env: Mapping[str, str]) -> Any:
    """``node`` as compose resolves it against ``env`` before starting anything: ``$VAR``,
    ``${VAR}``, ``${VAR:-default}``, ``${VAR-default}``, ``${VAR:?err}``, ``${VAR?err}``,
    ``${VAR:+alt}``, ``${VAR+alt}``, nested; ``$$`` becomes the ``$`` the container's shell
    sees. Raises MissingVariableError for a required variable that is unset (or empty, with
    ``:``)."""
    if isinstance(node, dict):
        return {key: interpolate(value, env) for key, value in node.items()}
    if isinstance(node, list):
        return [interpolate(item, env) for item in node]
    return _substitute(node, env) if isinstance(node, str) else node


def _substitute(text: str, env: Mapping[str, str]) -> str:
    out, i = [], 0
    while i < len(text):
        if text.startswith("$$", i):
            out.append("$")
            i += 2
        elif text.startswith("${", i):
            end = _closing_brace(text, i + 2)
            out.append(_expand(text[i + 2 : end], env))
            i = end + 1
        elif text[i] == "$" and (m := re.match(r"[A-Za-z_]\w*", text[i + 1 :])):
            out.append(env.get(m[0], ""))
            i += 1 + len(m[0])
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def _closing_brace(text: str, start: int) -> int:
    depth = 1
    for j in range(start, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return j
    raise ValueError(f"unclosed ${{ in {text!r}")


def _expand(body: str, env: Mapping[str, str]) -> str:
    """One ``${...}`` body: a name, then optionally an operator and its (nested) argument."""
    m = re.fullmatch(r"(\w+)(?:(:?[-?+])(.*))?", body, re.DOTALL)
    if m is None:
        raise ValueError(f"invalid interpolation ${{{body}}}")
    name, op, arg = m[1], m[2], m[3] or ""
    value, is_set = env.get(name), name in env
    present = bool(value) if op and op.startswith(":") else is_set
    if op in (":-", "-"):
        return str(value) if present else _substitute(arg, env)
    if op in (":?", "?"):
        if not present:
            raise MissingVariableError(name, _substitute(arg, env))
        return str(value)
    if op in (":+", "+"):
        return _substitute(arg, env) if present else ""
    return value or ""
