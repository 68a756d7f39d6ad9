"""Offline checks of docker-compose.yml, docker/mlflow/Dockerfile and the CI workflow.

No Docker engine is needed. Two layers:

* schema: `check-jsonschema` against the compose spec and the GitHub workflow schema
  (unknown keys, wrong types, bad YAML);
* cross-references the schema cannot see: depends_on targets, bind-mount paths, the published
  port, `--allowed-hosts`, the backend store URI and the mlflow version pin;
* who gets in: every port published on an address (loopback unless the environment opens it,
  and only an authenticated server may be opened), no password written in the file, and the
  `mlflow` service running the image's command with MLflow's basic-auth.

Every cross-reference check is a function returning a list of problems. `test_check_passes`
runs each on the real files; `test_check_catches` runs each on a broken copy and expects a
problem, so no check can pass vacuously.
"""

from __future__ import annotations

import configparser
import copy
import importlib.metadata
import ipaddress
import json
import re
import shlex
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from compose_support import (
    COMPOSE,
    Compose,
    MissingVariableError,
    interpolate,
    load_compose,
    services,
    set_at,
)
from support import REPO

DOCKERFILE = REPO / "docker" / "mlflow" / "Dockerfile"
WORKFLOW = REPO / ".github" / "workflows" / "ci.yml"
CHECK_JSONSCHEMA = Path(sys.executable).parent / "check-jsonschema"

MLFLOW_SERVICE = "mlflow"
MLFLOW_HOST_PORT = 8888
BACKEND_ENV = "MLFLOW_BACKEND_STORE_URI"
# SQLAlchemy 2.1 maps plain postgresql:// to psycopg 3, the driver the image installs.
PSYCOPG3_SCHEMES = {"postgresql", "postgresql+psycopg"}

Check = Callable[[Compose, str], list[str]]


# --------------------------------------------------------------------------- schema checks


def _check_jsonschema(schema: str, path: Path) -> subprocess.CompletedProcess[str]:
    if not CHECK_JSONSCHEMA.exists():
        pytest.fail(f"{CHECK_JSONSCHEMA} not found: pip install -e '.[test]'")
    return subprocess.run(
        [str(CHECK_JSONSCHEMA), "--builtin-schema", schema, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


SCHEMAS = [
    pytest.param("vendor.compose-spec", COMPOSE, id="compose-spec"),
    pytest.param("vendor.github-workflows", WORKFLOW, id="github-workflow"),
]


@pytest.mark.parametrize(("schema", "path"), SCHEMAS)
def test_file_matches_schema(schema: str, path: Path) -> None:
    result = _check_jsonschema(schema, path)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(("schema", "path"), SCHEMAS)
def test_schema_check_rejects_unknown_key(schema: str, path: Path, tmp_path: Path) -> None:
    # Append to the text rather than round-trip through yaml, which turns a workflow's `on:`
    # key into True and would break the file for a second reason.
    target = tmp_path / path.name
    target.write_text(path.read_text() + "\nnot_a_real_key: 1\n")
    result = _check_jsonschema(schema, target)
    assert result.returncode != 0, result.stdout + result.stderr


# --------------------------------------------------------------------------- parsing helpers


def environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's `environment`, in either the mapping or the list-of-KEY=VALUE form."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        pairs = (item.split("=", 1) for item in env)
        return {p[0]: p[1] if len(p) > 1 else "" for p in pairs}
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def server_command(dockerfile: str) -> list[str]:
    """The `mlflow server ...` argv of the Dockerfile's last CMD/ENTRYPOINT."""
    text = re.sub(r"\\\n", " ", dockerfile)
    lines = [ln.strip() for ln in text.splitlines()]
    found = [ln for ln in lines if re.match(r"(CMD|ENTRYPOINT)\s", ln)]
    assert found, "Dockerfile has no CMD or ENTRYPOINT"
    body = found[-1].split(None, 1)[1]
    argv = json.loads(body) if body.startswith("[") else ["sh", "-c", body]
    if argv[:2] == ["sh", "-c"]:
        argv = shlex.split(argv[2])
    if argv and argv[0] == "exec":
        argv = argv[1:]
    assert argv[:2] == ["mlflow", "server"], f"not an mlflow server command: {argv}"
    return argv


def flag(argv: list[str], name: str) -> str | None:
    for i, arg in enumerate(argv):
        if arg == name and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def published_ports(service: dict[str, Any]) -> list[tuple[int, int]]:
    """(host port, container port) pairs from short ("8888:5000") or long port syntax."""
    pairs = []
    for entry in service.get("ports") or []:
        if isinstance(entry, dict):
            if entry.get("published") is not None:
                pairs.append((int(entry["published"]), int(entry["target"])))
            continue
        parts = str(entry).split("/")[0].split(":")
        if len(parts) >= 2:  # [ip:]host:container
            pairs.append((int(parts[-2]), int(parts[-1])))
    return pairs


def bind_sources(service: dict[str, Any]) -> list[str]:
    """Host paths of bind mounts (named volumes are skipped)."""
    sources = []
    for entry in service.get("volumes") or []:
        if isinstance(entry, dict):
            if entry.get("type") == "bind":
                sources.append(str(entry["source"]))
            continue
        source = str(entry).split(":", 1)[0]
        if source.startswith((".", "/", "~")):
            sources.append(source)
    return sources


# --------------------------------------------------------------------------- cross-reference checks


def check_depends_on(compose: Compose, _dockerfile: str) -> list[str]:
    svcs = services(compose)
    problems, edges = [], 0
    for name, svc in svcs.items():
        deps = svc.get("depends_on") or {}
        conditions = (
            {d: {} for d in deps}
            if isinstance(deps, list)
            else {k: v or {} for k, v in deps.items()}
        )
        for target, spec in conditions.items():
            edges += 1
            if target not in svcs:
                problems.append(f"{name} depends_on missing service {target!r}")
            elif spec.get("condition") == "service_healthy" and "healthcheck" not in svcs[target]:
                problems.append(f"{name} waits for {target} to be healthy; it has no healthcheck")
    if MLFLOW_SERVICE in svcs and "depends_on" not in svcs[MLFLOW_SERVICE]:
        problems.append(f"{MLFLOW_SERVICE} does not depend on its database")
    if edges == 0:
        problems.append("no depends_on at all: nothing was checked")
    return problems


def check_bind_mounts(compose: Compose, _dockerfile: str) -> list[str]:
    allowed = (REPO / "docker").resolve()
    problems, seen = [], 0
    for name, svc in services(compose).items():
        for source in bind_sources(svc):
            seen += 1
            host = (REPO / Path(source).expanduser()).resolve()
            if not host.is_relative_to(allowed):
                problems.append(f"{name}: bind mount {source!r} is not under ./docker/")
    if seen == 0:
        problems.append("no bind mounts found: nothing was checked")
    return problems


def check_mlflow_port(compose: Compose, dockerfile: str) -> list[str]:
    svc = services(compose).get(MLFLOW_SERVICE)
    if svc is None:
        return [f"no {MLFLOW_SERVICE!r} service"]
    container_port = flag(server_command(dockerfile), "--port")
    pairs = published_ports(svc)
    hits = [c for h, c in pairs if h == MLFLOW_HOST_PORT]
    if not hits:
        return [f"{MLFLOW_SERVICE} does not publish host port {MLFLOW_HOST_PORT}: {pairs}"]
    if str(hits[0]) != container_port:
        return [
            f"host {MLFLOW_HOST_PORT} maps to {hits[0]}, the server listens on {container_port}"
        ]
    return []


def check_allowed_hosts(compose: Compose, dockerfile: str) -> list[str]:
    argv = server_command(dockerfile)
    value = flag(argv, "--allowed-hosts")
    if value is None:
        return ["Dockerfile's mlflow server has no --allowed-hosts"]
    hosts = {h.strip() for h in value.split(",")}
    port = flag(argv, "--port") or "5000"
    # The Host header is compared exactly, port included (see docker/README.md).
    needed = {
        MLFLOW_SERVICE,
        f"{MLFLOW_SERVICE}:{port}",
        f"localhost:{MLFLOW_HOST_PORT}",
        f"127.0.0.1:{MLFLOW_HOST_PORT}",
    }
    if MLFLOW_SERVICE not in services(compose):
        return [f"compose has no {MLFLOW_SERVICE!r} service to match --allowed-hosts against"]
    missing = sorted(needed - hosts)
    return [f"--allowed-hosts lacks {missing}"] if missing else []


def check_backend_uri(compose: Compose, dockerfile: str) -> list[str]:
    svcs = services(compose)
    svc = svcs.get(MLFLOW_SERVICE)
    if svc is None:
        return [f"no {MLFLOW_SERVICE!r} service"]
    problems = []
    backend_flag = flag(server_command(dockerfile), "--backend-store-uri") or ""
    # $VAR, ${VAR} or ${VAR:?message} / ${VAR:-default}
    if not re.fullmatch(rf"\$(\{{{BACKEND_ENV}([:}}].*)?|{BACKEND_ENV})", backend_flag):
        problems.append(f"Dockerfile --backend-store-uri {backend_flag!r} is not ${BACKEND_ENV}")
    uri = environment(svc).get(BACKEND_ENV)
    if not uri:
        return [*problems, f"{MLFLOW_SERVICE} does not set {BACKEND_ENV}"]
    parts = urlsplit(uri)
    if parts.scheme not in PSYCOPG3_SCHEMES:
        problems.append(f"scheme {parts.scheme!r} is not a psycopg 3 URI {PSYCOPG3_SCHEMES}")
    db = svcs.get(parts.hostname or "")
    if db is None:
        return [*problems, f"backend host {parts.hostname!r} is not a compose service"]
    if parts.hostname not in (svc.get("depends_on") or {}):
        problems.append(f"{MLFLOW_SERVICE} does not depend on {parts.hostname}")
    if (parts.port or 5432) != 5432:
        problems.append(f"backend port {parts.port} is not postgres' 5432")
    db_env = environment(db)
    expected = {
        "POSTGRES_USER": parts.username,
        "POSTGRES_PASSWORD": parts.password,
        "POSTGRES_DB": parts.path.lstrip("/"),
    }
    for key, value in expected.items():
        if db_env.get(key) != value:
            problems.append(f"URI has {key}={value!r}, {parts.hostname} has {db_env.get(key)!r}")
    return problems


LOCK = REPO / "constraints.txt"


def _lock_pins() -> dict[str, str]:
    pins = (line.split("==", 1) for line in LOCK.read_text().splitlines() if "==" in line)
    return {name.strip().lower(): version.strip() for name, version in pins}


def check_mlflow_pin(compose: Compose, dockerfile: str) -> list[str]:
    """The image installs from the lock (no pins of its own), built from the repo root."""
    problems = [
        f"Dockerfile pins {pin}: versions come from constraints.txt"
        for pin in re.findall(r"[\w.\-\[\]]+==[0-9][\w.+!-]*", dockerfile)
    ]
    copied = re.search(r"^COPY\s+constraints\.txt\s+(\S+)", dockerfile, re.MULTILINE)
    if copied is None or f"-c {copied.group(1)}" not in dockerfile:
        problems.append("Dockerfile does not COPY constraints.txt and pip install -c it")
    for name, svc in services(compose).items():
        build = svc.get("build")
        if build is not None and (not isinstance(build, dict) or build.get("context") != "."):
            problems.append(f"{name} builds from {build!r}, not the repo root (the lock is there)")
    installed, locked = importlib.metadata.version("mlflow"), _lock_pins().get("mlflow")
    if installed != locked:
        problems.append(
            f"constraints.txt locks mlflow {locked}, this environment has "
            f"{installed}: regenerate the lock (make lock) and test it"
        )
    return problems


AUTH_APP = "basic-auth"
# Secrets compose must refuse to start without (and whose absence it must name).
REQUIRED_SECRETS = ("POSTGRES_PASSWORD", "MLFLOW_AUTH_ADMIN_PASSWORD")
SECRET_KEYS = {
    "POSTGRES_PASSWORD",
    "PGPASSWORD",
    "MLFLOW_AUTH_ADMIN_PASSWORD",
    "MLFLOW_FLASK_SERVER_SECRET_KEY",
}
# A whole value that is one variable: ${VAR}, ${VAR:?message}, ${VAR?message} or ${VAR:-}
# (empty: the service makes its own). Anything else holds a literal or a shared default.
FROM_ENV = re.compile(r"\$\{\w+(:?\?[^}]*|:-)?\}")
PG_URI = re.compile(r"postgres(?:ql)?(?:\+\w+)?://[^\s\"']+")


def _port_entries(service: dict[str, Any]) -> list[tuple[str | None, str]]:
    """(host address or None, the entry as written) of every port a service publishes."""
    entries: list[tuple[str | None, str]] = []
    for entry in service.get("ports") or []:
        if isinstance(entry, dict):
            entries.append((entry.get("host_ip"), str(entry)))
            continue
        # [address:]host:container, where address may be a ${VAR:-default} holding colons
        parts = str(entry).rsplit(":", 2)
        entries.append((parts[0] if len(parts) == 3 else None, str(entry)))
    return entries


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:
        return address == "localhost"


def _runs_auth(service: dict[str, Any]) -> bool:
    return f"--app-name {AUTH_APP}" in " ".join(str(a) for a in service.get("command") or [])


def check_ports_bound(compose: Compose, _dockerfile: str) -> list[str]:
    """Every published port names an address, loopback when the environment sets nothing;
    an address the environment can change only on a server with authentication."""
    problems, seen = [], 0
    for name, svc in services(compose).items():
        for address, entry in _port_entries(svc):
            seen += 1
            if not address:
                problems.append(f"{name}: port {entry!r} is published on every interface")
                continue
            resolved = interpolate(address, {})
            if not _is_loopback(resolved):
                problems.append(f"{name}: port {entry!r} defaults to {resolved!r}, not loopback")
            if "$" in address and not _runs_auth(svc):
                problems.append(f"{name}: {entry!r} can be opened but {name} has no {AUTH_APP}")
    return problems if seen else ["no published port: nothing was checked"]


def _secret_literals(compose: Compose) -> list[str]:
    """Secret variables and database URI passwords that are not taken from the environment."""
    problems, seen = [], 0
    for name, svc in services(compose).items():
        for key, value in environment(svc).items():
            if key in SECRET_KEYS:
                seen += 1
                if not FROM_ENV.fullmatch(value):
                    problems.append(f"{name}.{key} = {value!r} is not taken from the environment")
    for uri in PG_URI.findall(json.dumps(compose)):
        password = re.match(r"[^:/]+://[^:@/]+:([^@]*)@", uri)
        if password:
            seen += 1
            if not FROM_ENV.fullmatch(password[1]):
                problems.append(f"{uri!r} writes its password in the file")
    return problems if seen else ["no secret found: nothing was checked"]


def check_secrets_from_environment(compose: Compose, _dockerfile: str) -> list[str]:
    """No password is written in the file, and compose refuses to start without each required
    secret, naming it (compose's ${VAR:?message})."""
    problems = _secret_literals(compose)
    for secret in REQUIRED_SECRETS:
        others = {other: "x" * 24 for other in REQUIRED_SECRETS if other != secret}
        try:
            interpolate(compose, others)
        except MissingVariableError as exc:
            if exc.name != secret:
                problems.append(f"without {secret} compose stops on {exc.name} instead")
            continue
        problems.append(f"compose starts without {secret}")
    return problems


def _auth_argv(service: dict[str, Any], env: dict[str, str]) -> list[str]:
    """The `mlflow server ...` argv of a service's `sh -c "... && exec mlflow server ..."`."""
    command = [str(a) for a in interpolate(service.get("command") or [], env)]
    if command[:2] != ["sh", "-c"] or len(command) != 3:
        return command
    argv = shlex.split(command[2])
    return argv[argv.index("exec") + 1 :] if "exec" in argv else argv


def _auth_config(compose: Compose, service: dict[str, Any]) -> configparser.ConfigParser | None:
    """The basic_auth.ini that MLFLOW_AUTH_CONFIG_PATH names, from the top-level configs."""
    path = environment(service).get("MLFLOW_AUTH_CONFIG_PATH")
    mounted = {c.get("target"): c.get("source") for c in service.get("configs") or []}
    source = (compose.get("configs") or {}).get(mounted.get(path) or "") or {}
    if "content" not in source:
        return None
    parser = configparser.ConfigParser()
    parser.read_string(source["content"])
    return parser


def check_auth_server(compose: Compose, dockerfile: str) -> list[str]:
    """The mlflow service runs the image's command plus --app-name basic-auth (extra allowed
    hosts from the environment); its auth config names the compose database, no password."""
    svc = services(compose).get(MLFLOW_SERVICE) or {}
    expected = [*server_command(dockerfile), "--app-name", AUTH_APP]
    problems = []
    if _auth_argv(svc, {}) != expected:
        problems.append(f"{MLFLOW_SERVICE} runs {_auth_argv(svc, {})}, expected {expected}")
    extra = _auth_argv(svc, {"MLFLOW_EXTRA_ALLOWED_HOSTS": "gpu-box:8888"})
    if "gpu-box:8888" not in (flag(extra, "--allowed-hosts") or "").split(","):
        problems.append("MLFLOW_EXTRA_ALLOWED_HOSTS does not reach --allowed-hosts")
    config = _auth_config(compose, svc)
    if config is None:
        return [*problems, "MLFLOW_AUTH_CONFIG_PATH is not a mounted config with content"]
    uri = urlsplit(config.get("mlflow", "database_uri", fallback=""))
    if uri.hostname not in services(compose) or uri.password is not None:
        problems.append(f"auth database_uri {uri.geturl()!r}: not a compose service, or a password")
    for key in ("MLFLOW_AUTH_ADMIN_USERNAME", "MLFLOW_AUTH_ADMIN_PASSWORD", "PGPASSWORD"):
        if key not in environment(svc):
            problems.append(f"{MLFLOW_SERVICE} does not set {key}")
    return problems


CHECKS: list[Check] = [
    check_depends_on,
    check_bind_mounts,
    check_mlflow_port,
    check_allowed_hosts,
    check_backend_uri,
    check_mlflow_pin,
    check_ports_bound,
    check_secrets_from_environment,
    check_auth_server,
]


@pytest.fixture(scope="module")
def compose() -> Compose:
    return load_compose()


@pytest.fixture(scope="module")
def dockerfile() -> str:
    return DOCKERFILE.read_text()


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
def test_check_passes(check: Check, compose: Compose, dockerfile: str) -> None:
    assert check(compose, dockerfile) == []


# --------------------------------------------------------------------------- each check can fail


def _swap(old: str, new: str) -> Callable[[str], str]:
    def mutate(text: str) -> str:
        assert old in text, f"{old!r} not in Dockerfile: update this mutation"
        return text.replace(old, new)

    return mutate


def _keep(x: Any) -> None:
    return None


def _same(text: str) -> str:
    return text


MUTATIONS = [
    # (check, compose mutation, dockerfile mutation)
    pytest.param(
        check_depends_on,
        set_at("services.mlflow.depends_on", {"postgres": {"condition": "service_healthy"}}),
        _same,
        id="depends_on-missing-target",
    ),
    pytest.param(
        check_depends_on,
        set_at("services.mlflow-db.healthcheck", None),
        _same,
        id="depends_on-healthy-without-healthcheck",
    ),
    pytest.param(
        check_depends_on,
        set_at("services.mlflow.depends_on", None),
        _same,
        id="depends_on-removed",
    ),
    pytest.param(
        check_bind_mounts,
        set_at("services.mlflow-db.volumes.0", "./pgdata:/var/lib/postgresql/data"),
        _same,
        id="bind-outside-docker",
    ),
    pytest.param(
        check_bind_mounts,
        set_at("services.mlflow.volumes.0", "./docker/../mlruns:/mlflow/artifacts"),
        _same,
        id="bind-escapes-docker",
    ),
    pytest.param(
        check_mlflow_port,
        set_at("services.mlflow.ports", ["8889:5000"]),
        _same,
        id="port-not-8888",
    ),
    pytest.param(
        check_mlflow_port,
        _keep,
        _swap("--port 5000", "--port 5001"),
        id="port-container-mismatch",
    ),
    pytest.param(
        check_allowed_hosts,
        _keep,
        _swap("--allowed-hosts mlflow,mlflow:5000,", "--allowed-hosts "),
        id="allowed-hosts-no-service-name",
    ),
    pytest.param(
        check_allowed_hosts,
        _keep,
        _swap(",localhost:8888", ""),
        id="allowed-hosts-no-published-port",
    ),
    pytest.param(
        check_backend_uri,
        set_at(
            f"services.mlflow.environment.{BACKEND_ENV}",
            "postgresql://mlflow:mlflow@db:5432/mlflow",
        ),
        _same,
        id="backend-host-not-a-service",
    ),
    pytest.param(
        check_backend_uri,
        set_at(
            f"services.mlflow.environment.{BACKEND_ENV}",
            "postgresql+psycopg2://mlflow:mlflow@mlflow-db:5432/mlflow",
        ),
        _same,
        id="backend-psycopg2-driver",
    ),
    pytest.param(
        check_backend_uri,
        set_at("services.mlflow-db.environment.POSTGRES_DB", "other"),
        _same,
        id="backend-db-name-mismatch",
    ),
    pytest.param(
        check_backend_uri,
        _keep,
        _swap(f"${{{BACKEND_ENV}:?", "${OTHER_URI:?"),
        id="backend-dockerfile-ignores-env",
    ),
    pytest.param(
        check_mlflow_pin,
        _keep,
        _swap('"mlflow[auth]"', '"mlflow[auth]==0.0.1"'),
        id="mlflow-pinned-in-dockerfile",
    ),
    pytest.param(
        check_mlflow_pin,
        set_at("services.mlflow.build", "docker/mlflow"),
        _same,
        id="build-context-without-lock",
    ),
]


def _command_swap(old: str, new: str) -> Callable[[Compose], None]:
    """Mutation that edits the mlflow service's `sh -c` script."""

    def mutate(c: Compose) -> None:
        script = c["services"][MLFLOW_SERVICE]["command"][2]
        assert old in script, f"{old!r} not in the mlflow command: update this mutation"
        c["services"][MLFLOW_SERVICE]["command"][2] = script.replace(old, new)

    return mutate


MUTATIONS += [
    pytest.param(
        check_ports_bound,
        set_at("services.mlflow.ports", ["8888:5000"]),
        _same,
        id="port-on-every-interface",
    ),
    pytest.param(
        check_ports_bound,
        set_at("services.mlflow.ports", ["${STOCKPIPE_BIND:-0.0.0.0}:8888:5000"]),
        _same,
        id="port-defaults-to-every-interface",
    ),
    pytest.param(
        check_ports_bound,
        set_at("services.mlflow-minio.ports", ["${STOCKPIPE_BIND:-127.0.0.1}:8889:5000"]),
        _same,
        id="unauthenticated-port-openable",
    ),
    pytest.param(
        check_ports_bound,
        set_at("services.minio.ports.0", {"target": 9000, "published": 9000}),
        _same,
        id="long-syntax-without-host-ip",
    ),
    pytest.param(
        check_secrets_from_environment,
        set_at("services.mlflow-db.environment.POSTGRES_PASSWORD", "mlflow"),
        _same,
        id="postgres-password-literal",
    ),
    pytest.param(
        check_secrets_from_environment,
        set_at(
            f"services.mlflow.environment.{BACKEND_ENV}",
            "postgresql://mlflow:mlflow@mlflow-db:5432/mlflow",
        ),
        _same,
        id="password-in-uri",
    ),
    pytest.param(
        check_secrets_from_environment,
        set_at("services.mlflow.environment.PGPASSWORD", "${POSTGRES_PASSWORD:-mlflow}"),
        _same,
        id="postgres-password-shared-default",
    ),
    pytest.param(
        check_secrets_from_environment,
        set_at("services.mlflow.environment.MLFLOW_AUTH_ADMIN_PASSWORD", "${ADMIN_PASSWORD}"),
        _same,
        id="admin-password-not-required",
    ),
    pytest.param(
        check_auth_server,
        _command_swap(" --app-name basic-auth", ""),
        _same,
        id="auth-off",
    ),
    pytest.param(
        check_auth_server,
        _command_swap("--workers 1", "--workers 4"),
        _same,
        id="auth-command-drifts-from-image",
    ),
    pytest.param(
        check_auth_server,
        _command_swap("${MLFLOW_EXTRA_ALLOWED_HOSTS:+,${MLFLOW_EXTRA_ALLOWED_HOSTS}}", ""),
        _same,
        id="auth-no-extra-hosts",
    ),
    pytest.param(
        check_auth_server,
        set_at(
            "configs.mlflow-basic-auth.content",
            "[mlflow]\ndatabase_uri = postgresql://mlflow:pw@mlflow-db:5432/mlflow\n",
        ),
        _same,
        id="auth-config-with-password",
    ),
    pytest.param(
        check_auth_server,
        set_at("services.mlflow.configs", None),
        _same,
        id="auth-config-not-mounted",
    ),
]


@pytest.mark.parametrize(("check", "mutate_compose", "mutate_dockerfile"), MUTATIONS)
def test_check_catches(
    check: Check,
    mutate_compose: Callable[[Compose], None],
    mutate_dockerfile: Callable[[str], str],
    compose: Compose,
    dockerfile: str,
) -> None:
    broken = copy.deepcopy(compose)
    mutate_compose(broken)
    assert check(broken, mutate_dockerfile(dockerfile)), "the broken copy was not flagged"


def test_every_check_has_a_mutation() -> None:
    covered = {p.values[0] for p in MUTATIONS}
    assert covered == set(CHECKS)
