"""Offline checks of the compose `minio` profile and the `--env minio` client overlay.

`docker compose --profile minio up` must put artifacts in the MinIO bucket with no environment
variable set, and every MinIO credential must be a local-only default that the environment can
override. No Docker engine is needed: `test_compose.py` validates the file against the compose
spec; this module checks what the schema cannot see, on the file as compose would interpolate
it (`${VAR:-default}`) with an empty environment and with overrides:

* the mlflow-minio server's endpoint, bucket and keys agree with the minio and minio-init
  services, with and without overrides;
* mlflow-minio runs the image's server command (same flags as docker/mlflow/Dockerfile) with
  its own database (the one mlflow-minio-db-init creates) and its names in --allowed-hosts;
* the profile's services stay out of a plain `docker compose up`, and the plain mlflow keeps
  its artifact folder;
* conf/minio points clients at mlflow-minio's published port and carries no S3 secret.

Each check returns a list of problems; `test_check_catches` breaks a copy of the file for each
one, so none can pass vacuously. The artifact path itself runs against a real S3 endpoint in
tests/e2e/test_minio_artifacts.py.
"""

from __future__ import annotations

import copy
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from compose_support import Compose, load_compose, services, set_at
from support import REPO
from tracking_server import is_store_uri, server_command

from pipeline.config import load_config

DOCKERFILE = REPO / "docker" / "mlflow" / "Dockerfile"
MINIO_CONF = REPO / "conf" / "minio"
SERVER_CONF = REPO / "conf" / "server"

PROFILE = "minio"
PROFILE_SERVICES = {"minio", "minio-init", "mlflow-minio-db-init", "mlflow-minio"}
SERVER = "mlflow-minio"
MINIO_API_PORT = 9000  # `minio server` listens there unless told otherwise
# The variables a user may set to override the local-only defaults.
OVERRIDES = {
    "MINIO_ROOT_USER": "alice",
    "MINIO_ROOT_PASSWORD": "not-the-default",
    "MLFLOW_S3_BUCKET": "team-artifacts",
}
S3_KEYS = ("MLFLOW_S3_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")

Check = Callable[[Compose], list[str]]

# ${VAR}, ${VAR:-default} and ${VAR-default}, as compose interpolates them.
_VARIABLE = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}")


# --------------------------------------------------------------------------- interpolation


def interpolate(node: Any, env: Mapping[str, str]) -> Any:
    """``node`` with every ``${VAR:-default}`` resolved against ``env``, as compose does
    before it starts anything; ``$$`` (a literal ``$`` for the container's shell) is kept."""
    if isinstance(node, dict):
        return {key: interpolate(value, env) for key, value in node.items()}
    if isinstance(node, list):
        return [interpolate(item, env) for item in node]
    if isinstance(node, str):
        return _VARIABLE.sub(lambda m: env.get(m[1]) or m[2] or "", node)
    return node


def service(compose: Compose, name: str) -> dict[str, Any]:
    return services(compose).get(name) or {}


def environment(svc: Mapping[str, Any]) -> dict[str, str]:
    """A service's `environment` in the mapping form (the only form this file uses)."""
    return {str(k): "" if v is None else str(v) for k, v in (svc.get("environment") or {}).items()}


def flag(argv: list[str], name: str) -> str | None:
    for i, arg in enumerate(argv):
        if arg == name and i + 1 < len(argv):
            return argv[i + 1]
    return None


def flag_names(argv: list[str]) -> set[str]:
    return {arg for arg in argv if arg.startswith("--")}


def image_command(dockerfile: str) -> list[str]:
    """The `mlflow server ...` argv of the Dockerfile's CMD (`sh -c "exec mlflow server ..."`)."""
    body = dockerfile.rsplit("\nCMD ", 1)[1].strip()
    argv = shlex.split(yaml.safe_load(body)[-1])
    return argv[1:] if argv[0] == "exec" else argv


def script(svc: Mapping[str, Any]) -> str:
    """A one-shot service's entrypoint as one string (the shell script is its last item)."""
    return " ".join(str(part) for part in svc.get("entrypoint") or [])


def published(svc: Mapping[str, Any], container_port: int) -> int | None:
    """The host port that publishes ``container_port`` (short syntax, optional IP)."""
    for entry in svc.get("ports") or []:
        *_, host, container = str(entry).split(":")
        if int(container) == container_port:
            return int(host)
    return None


# --------------------------------------------------------------------------- checks


def check_profile_membership(compose: Compose) -> list[str]:
    """The profile's services start only with `--profile minio`; nothing else is profiled."""
    problems = []
    for name, svc in services(compose).items():
        profiles = svc.get("profiles") or []
        if name in PROFILE_SERVICES and profiles != [PROFILE]:
            problems.append(f"{name} has profiles {profiles}, expected [{PROFILE!r}]")
        if name not in PROFILE_SERVICES and profiles:
            problems.append(f"{name} is profiled {profiles}: a plain `up` would not start it")
    missing = PROFILE_SERVICES - set(services(compose))
    return [*problems, *(f"no {name!r} service" for name in sorted(missing))]


def check_plain_server_keeps_its_folder(compose: Compose) -> list[str]:
    """Without the profile nothing changes: the 8888 server writes to its bind mount."""
    env = environment(service(compose, "mlflow"))
    problems = [f"mlflow sets {key}" for key in S3_KEYS if key in env]
    destination = env.get("MLFLOW_ARTIFACTS_DESTINATION", "")
    if "://" in destination or not destination.startswith("/"):
        problems.append(f"mlflow's artifacts destination {destination!r} is not its folder")
    return problems


def _server_settings(compose: Compose) -> tuple[str, str, dict[str, str]]:
    """mlflow-minio's artifacts destination, backend URI and environment."""
    svc = service(compose, SERVER)
    argv = [str(a) for a in svc.get("command") or []]
    return (
        flag(argv, "--artifacts-destination") or "",
        flag(argv, "--backend-store-uri") or "",
        environment(svc),
    )


def check_s3_wiring(compose: Compose) -> list[str]:
    """Endpoint, bucket and keys agree across services, with defaults and with overrides."""
    problems = []
    for label, env in (("defaults", {}), ("overrides", OVERRIDES)):
        resolved = interpolate(compose, env)
        destination, _, server_env = _server_settings(resolved)
        minio_env = environment(service(resolved, "minio"))
        init_env = environment(service(resolved, "minio-init"))
        bucket = init_env.get("MLFLOW_S3_BUCKET")
        if not bucket or destination != f"s3://{bucket}":
            problems.append(f"{label}: destination {destination!r}, minio-init makes {bucket!r}")
        if "$$MLFLOW_S3_BUCKET" not in script(service(resolved, "minio-init")):
            problems.append(f"{label}: minio-init does not create $MLFLOW_S3_BUCKET")
        endpoint = urlsplit(server_env.get("MLFLOW_S3_ENDPOINT_URL", ""))
        if (endpoint.hostname, endpoint.port) != ("minio", MINIO_API_PORT):
            problems.append(f"{label}: S3 endpoint {endpoint.geturl()!r} is not minio:9000")
        for key, root in (
            ("AWS_ACCESS_KEY_ID", "MINIO_ROOT_USER"),
            ("AWS_SECRET_ACCESS_KEY", "MINIO_ROOT_PASSWORD"),
        ):
            values = {server_env.get(key), minio_env.get(root), init_env.get(root)}
            if len(values) != 1 or None in values:
                problems.append(f"{label}: {key}/{root} differ across services: {values}")
            if env and server_env.get(key) != env[root]:
                problems.append(f"{label}: {root} from the environment does not reach {key}")
    return problems


def check_credentials_are_overridable_defaults(compose: Compose) -> list[str]:
    """Every MinIO credential is written `${VAR:-default}`: local-only, never hard-coded."""
    problems, seen = [], 0
    for name in ("minio", "minio-init", SERVER):
        for key, value in environment(service(compose, name)).items():
            if key in ("MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD", *S3_KEYS):
                seen += 1
                if not re.fullmatch(r"\$\{\w+:-[^}]+\}", value):
                    problems.append(f"{name}.{key} = {value!r} is not an overridable default")
    return problems or ([] if seen else ["no MinIO credential found: nothing was checked"])


def check_server_command(compose: Compose) -> list[str]:
    """mlflow-minio runs the image's command: same flags and values but the database, the
    destination and the allowed hosts, which must name it and its published port."""
    argv = [str(a) for a in service(compose, SERVER).get("command") or []]
    image = image_command(DOCKERFILE.read_text())
    if argv[:2] != ["mlflow", "server"]:
        return [f"{SERVER} does not run `mlflow server`: {argv[:2]}"]
    problems = []
    if flag_names(argv) != flag_names(image):
        problems.append(f"flags {sorted(flag_names(argv))} != image {sorted(flag_names(image))}")
    for name in ("--host", "--port", "--workers"):
        if flag(argv, name) != flag(image, name):
            problems.append(f"{name} {flag(argv, name)!r} != image {flag(image, name)!r}")
    port = flag(argv, "--port") or ""
    host_port = published(service(compose, SERVER), int(port)) if port.isdigit() else None
    if host_port is None:
        return [*problems, f"{SERVER} does not publish its port {port}"]
    hosts = set((flag(argv, "--allowed-hosts") or "").split(","))
    needed = {SERVER, f"{SERVER}:{port}", f"localhost:{host_port}", f"127.0.0.1:{host_port}"}
    if needed - hosts:
        problems.append(f"--allowed-hosts lacks {sorted(needed - hosts)}")
    return problems


def check_own_database(compose: Compose) -> list[str]:
    """mlflow-minio's registry is its own (one registry, one artifact store), in mlflow-db,
    created by mlflow-minio-db-init before the server starts."""
    _, backend, _ = _server_settings(compose)
    uri = urlsplit(backend)
    database = uri.path.lstrip("/")
    db_env = environment(service(compose, "mlflow-db"))
    problems = []
    if uri.hostname != "mlflow-db":
        problems.append(f"backend host {uri.hostname!r} is not mlflow-db")
    if not database or database == db_env.get("POSTGRES_DB"):
        problems.append(f"backend database {database!r} is the plain mlflow server's")
    if (uri.username, uri.password) != (
        db_env.get("POSTGRES_USER"),
        db_env.get("POSTGRES_PASSWORD"),
    ):
        problems.append("backend credentials differ from mlflow-db's")
    init = script(service(compose, "mlflow-minio-db-init"))
    if f"createdb {database}" not in init or f"datname = '{database}'" not in init:
        problems.append(f"mlflow-minio-db-init does not create {database!r}")
    deps = service(compose, SERVER).get("depends_on") or {}
    for name in ("mlflow-minio-db-init", "minio-init"):
        if (deps.get(name) or {}).get("condition") != "service_completed_successfully":
            problems.append(f"{SERVER} does not wait for {name} to finish")
    return problems


def check_client_overlay(compose: Compose) -> list[str]:
    """conf/minio/tracking.yaml reaches mlflow-minio's published port on this machine."""
    uri = urlsplit(yaml.safe_load((MINIO_CONF / "tracking.yaml").read_text())["uri"])
    port = flag([str(a) for a in service(compose, SERVER).get("command") or []], "--port")
    host_port = published(service(compose, SERVER), int(port)) if port and port.isdigit() else None
    if (uri.scheme, uri.hostname, uri.port) != ("http", "127.0.0.1", host_port):
        return [f"conf/minio tracks to {uri.geturl()}, {SERVER} is published on {host_port}"]
    return []


CHECKS: list[Check] = [
    check_profile_membership,
    check_plain_server_keeps_its_folder,
    check_s3_wiring,
    check_credentials_are_overridable_defaults,
    check_server_command,
    check_own_database,
    check_client_overlay,
]


@pytest.fixture(scope="module")
def compose() -> Compose:
    return load_compose()


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
def test_check_passes(check: Check, compose: Compose) -> None:
    assert check(compose) == []


# --------------------------------------------------------------------------- each check can fail


def _command_arg(name: str, value: str) -> Callable[[Compose], None]:
    """Mutation that sets the value of ``name`` in mlflow-minio's command."""

    def mutate(c: Compose) -> None:
        argv = c["services"][SERVER]["command"]
        argv[argv.index(name) + 1] = value

    return mutate


MUTATIONS = [
    pytest.param(
        check_profile_membership, set_at(f"services.{SERVER}.profiles", None), id="unprofiled"
    ),
    pytest.param(
        check_profile_membership,
        set_at("services.mlflow.profiles", [PROFILE]),
        id="mlflow-profiled",
    ),
    pytest.param(
        check_plain_server_keeps_its_folder,
        set_at("services.mlflow.environment.MLFLOW_ARTIFACTS_DESTINATION", "s3://mlflow"),
        id="plain-server-on-s3",
    ),
    pytest.param(
        check_s3_wiring,
        _command_arg("--artifacts-destination", "s3://mlflow"),
        id="bucket-not-overridable",
    ),
    pytest.param(
        check_s3_wiring,
        set_at(
            f"services.{SERVER}.environment.MLFLOW_S3_ENDPOINT_URL", "${X:-http://localhost:9000}"
        ),
        id="endpoint-not-minio",
    ),
    pytest.param(
        check_s3_wiring,
        set_at(
            f"services.{SERVER}.environment.AWS_SECRET_ACCESS_KEY", "${MINIO_SECRET:-minio-secret}"
        ),
        id="secret-from-another-variable",
    ),
    pytest.param(
        check_credentials_are_overridable_defaults,
        set_at("services.minio.environment.MINIO_ROOT_PASSWORD", "minio-secret"),
        id="hard-coded-password",
    ),
    pytest.param(
        check_server_command,
        _command_arg("--allowed-hosts", "localhost,127.0.0.1:8889"),
        id="allowed-hosts-no-service-name",
    ),
    pytest.param(check_server_command, _command_arg("--workers", "4"), id="workers-differ"),
    pytest.param(
        check_server_command, set_at(f"services.{SERVER}.ports", ["8890:5001"]), id="unpublished"
    ),
    pytest.param(
        check_own_database,
        _command_arg("--backend-store-uri", "postgresql://mlflow:mlflow@mlflow-db:5432/mlflow"),
        id="shares-the-plain-database",
    ),
    pytest.param(
        check_own_database,
        set_at(f"services.{SERVER}.depends_on.minio-init", None),
        id="does-not-wait-for-the-bucket",
    ),
    pytest.param(
        check_client_overlay, set_at(f"services.{SERVER}.ports", ["8890:5000"]), id="port-moved"
    ),
]


@pytest.mark.parametrize(("check", "mutate"), MUTATIONS)
def test_check_catches(check: Check, mutate: Callable[[Compose], None], compose: Compose) -> None:
    broken = copy.deepcopy(compose)
    mutate(broken)
    assert check(broken), "the broken copy was not flagged"


def test_every_check_has_a_mutation() -> None:
    assert {p.values[0] for p in MUTATIONS} == set(CHECKS)


# --------------------------------------------------------------------------- the client overlay


def test_minio_env_config_tracks_to_mlflow_minio_and_tunes_like_server(tmp_path: Path) -> None:
    shutil.copytree(REPO / "conf" / "base", tmp_path / "conf" / "base")  # no conf/local here
    shutil.copytree(MINIO_CONF, tmp_path / "conf" / "minio")
    cfg = load_config(tmp_path / "conf", "minio")
    assert cfg.tracking_uri == "http://127.0.0.1:8889"
    # the same studies as --env server: workers of either environment can share a competition
    server_training = yaml.safe_load((SERVER_CONF / "training.yaml").read_text())
    assert yaml.safe_load((MINIO_CONF / "training.yaml").read_text()) == server_training
    assert cfg.training.tuning.storage == server_training["tuning"]["storage"]


def test_minio_env_carries_no_s3_settings() -> None:
    # Artifacts are proxied by the server: a client holding the keys would be a leak, not a need.
    text = "\n".join(
        line.split("#", 1)[0] for p in sorted(MINIO_CONF.glob("*.yaml")) for line in p.open()
    )
    for secret in ("minio-secret", "AWS_", "s3://", ":9000"):
        assert secret not in text, f"conf/minio sets {secret!r}"


# --------------------------------------------------------------------------- native server


def test_script_and_helper_pass_an_s3_destination_through(tmp_path: Path) -> None:
    """docker/mlflow-server.sh and start_tracking_server take `s3://bucket` as given: no
    folder named `s3:` is created, and both build the same command."""
    script = REPO / "docker" / "mlflow-server.sh"
    args = ["--artifacts", "s3://mlflow", "--port", "8889"]
    backend = "postgresql://postgres@127.0.0.1:5432/mlflow_minio"
    args += ["--backend-store-uri", backend]
    env = {**os.environ, "MLFLOW": "true"}  # `true server ...`: runs the script to its exec
    printed = subprocess.run(
        ["bash", str(script), "--print", *args], env=env, capture_output=True, text=True
    )
    assert printed.returncode == 0, printed.stderr
    helper = server_command(backend, "s3://mlflow", "127.0.0.1", 8889)
    assert printed.stdout.splitlines() == ["true", *helper[1:]]
    ran = subprocess.run(["bash", str(script), *args], env=env, cwd=tmp_path, check=False)
    assert ran.returncode == 0
    assert list(tmp_path.iterdir()) == []
    assert is_store_uri("s3://mlflow") and not is_store_uri(tmp_path / "artifacts")
    assert not is_store_uri("artifacts/s3:")
