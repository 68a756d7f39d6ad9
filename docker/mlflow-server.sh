#!/usr/bin/env bash
# Run the MLflow tracking server of docker/mlflow/Dockerfile natively, against an existing
# PostgreSQL: same flags (served artifacts, --workers 1, explicit --allowed-hosts) and the same
# environment (job runner and telemetry off). tests/tracking_server.py starts the same
# command from Python (tests use it).
#
# Usage:
#   docker/mlflow-server.sh [--backend-store-uri URI] [--host HOST] [--port PORT]
#                           [--artifacts DIR|URI] [--allowed-host NAME]... [--auth] [--print]
#
# Each option has an environment default:
#   --backend-store-uri  MLFLOW_BACKEND_STORE_URI   postgresql://postgres@127.0.0.1:5432/mlflow
#   --host               MLFLOW_HOST                127.0.0.1 (0.0.0.0 to accept other machines)
#   --port               MLFLOW_PORT                8888 (the port docker-compose.yml publishes)
#   --artifacts          MLFLOW_ARTIFACTS_DIR       docker/mlflow/artifacts (as the compose bind mount),
#                                                   or an object-store URI such as s3://mlflow
#   --allowed-host       MLFLOW_EXTRA_ALLOWED_HOSTS (comma-separated) extra Host headers to accept
#   --auth               MLFLOW_AUTH=1              MLflow's authentication (--app-name basic-auth)
#   --print              print the command (one argument a line) instead of running it
#   MLFLOW               the mlflow executable (default: $VIRTUAL_ENV/bin/mlflow, else PATH)
#
# MLflow compares the Host header exactly, port included, and answers 403 to anything not
# listed (while /health still says OK). localhost and 127.0.0.1, bare and with the port, are
# always allowed; when other machines connect, add the name or IP they use, with the port:
#   docker/mlflow-server.sh --host 0.0.0.0 --allowed-host gpu-box:8888 --allowed-host '10.0.0.*:8888'
#
# Needs `pip install -e ".[server]"` (psycopg 3: SQLAlchemy 2.1 maps postgresql:// to it;
# Flask-WTF for --auth) and the database: createdb -h 127.0.0.1 -U postgres mlflow
#
# --auth: every API call needs a user's name and password (clients: MLFLOW_TRACKING_USERNAME
# and MLFLOW_TRACKING_PASSWORD); /health stays open. Use it whenever --host is not loopback.
# Everything secret comes from the environment, never from a file in the repository:
#   MLFLOW_AUTH_ADMIN_PASSWORD      the first admin's password (12+ characters), needed on the
#                                   first start only; MLFLOW_AUTH_ADMIN_USERNAME (default admin)
#   MLFLOW_AUTH_DATABASE_URI        where users and permissions live (default: the backend
#                                   store's database, in tables of their own)
#   MLFLOW_FLASK_SERVER_SECRET_KEY  signs the UI's forms (default: random at each start)
#   MLFLOW_AUTH_CONFIG_PATH         your own basic_auth.ini instead of the one written to
#                                   $TMPDIR (default_permission = READ, database_uri as above)
#   read -rs MLFLOW_AUTH_ADMIN_PASSWORD && export MLFLOW_AUTH_ADMIN_PASSWORD
#   docker/mlflow-server.sh --auth --host 0.0.0.0 --allowed-host gpu-box:8888
#
# Artifacts in S3/MinIO, as the compose `minio` profile's mlflow-minio service (port 8889, own
# database). The endpoint and keys go to this server's environment only: clients upload and
# download through the server. Needs boto3 (`pip install -e ".[server,s3]"`) and the bucket.
# The keys below are the compose file's local-only MinIO defaults:
#   createdb -h 127.0.0.1 -U postgres mlflow_minio
#   MLFLOW_S3_ENDPOINT_URL=http://127.0.0.1:9000 \
#   AWS_ACCESS_KEY_ID=minio AWS_SECRET_ACCESS_KEY=minio-secret \
#   docker/mlflow-server.sh --artifacts s3://mlflow --port 8889 \
#       --backend-store-uri postgresql://postgres@127.0.0.1:5432/mlflow_minio
#
# The script execs mlflow, so the server keeps this shell's pid. In a terminal, run it in the
# foreground and stop it with Ctrl-C (which reaches the whole foreground process group). In the
# background, give it its own process group and stop the group: killed during start-up the
# server can leave children behind. From a script (no job control, so setsid does not fork and
# $! is the new group's id):
#   setsid docker/mlflow-server.sh > mlflow-server.log 2>&1 &
#   pgid=$!
#   ...
#   kill -- -"$pgid"
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BACKEND="${MLFLOW_BACKEND_STORE_URI:-postgresql://postgres@127.0.0.1:5432/mlflow}"
HOST="${MLFLOW_HOST:-127.0.0.1}"
PORT="${MLFLOW_PORT:-8888}"
ARTIFACTS="${MLFLOW_ARTIFACTS_DIR:-$ROOT/docker/mlflow/artifacts}"
EXTRA="${MLFLOW_EXTRA_ALLOWED_HOSTS:-}"
AUTH="${MLFLOW_AUTH:-0}"
PRINT=0

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
    case "$1" in
        --backend-store-uri) BACKEND="$2"; shift 2 ;;
        --host) HOST="$2"; shift 2 ;;
        --port) PORT="$2"; shift 2 ;;
        --artifacts) ARTIFACTS="$2"; shift 2 ;;
        --allowed-host) EXTRA="${EXTRA:+$EXTRA,}$2"; shift 2 ;;
        --auth) AUTH=1; shift ;;
        --print) PRINT=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "mlflow-server.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done

# $MLFLOW if set, else the mlflow of the active virtualenv, else the one on PATH.
if [ -z "${MLFLOW:-}" ]; then
    MLFLOW=mlflow
    if [ -n "${VIRTUAL_ENV:-}" ] && [ -x "$VIRTUAL_ENV/bin/mlflow" ]; then
        MLFLOW="$VIRTUAL_ENV/bin/mlflow"
    fi
fi

# Same list as tests/tracking_server.py:allowed_hosts(), plus the extras.
ALLOWED="localhost,localhost:$PORT,127.0.0.1,127.0.0.1:$PORT"
case "$HOST" in
    localhost|127.0.0.1|0.0.0.0) ;;
    *) ALLOWED="$ALLOWED,$HOST,$HOST:$PORT" ;;
esac
ALLOWED="$ALLOWED${EXTRA:+,$EXTRA}"

export MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false
export MLFLOW_DISABLE_TELEMETRY=true

CMD=("$MLFLOW" server
    --backend-store-uri "$BACKEND"
    --artifacts-destination "$ARTIFACTS"
    --host "$HOST"
    --port "$PORT"
    --workers 1
    --allowed-hosts "$ALLOWED")
case "$AUTH" in
    1|true|yes) AUTH=1; CMD+=(--app-name basic-auth) ;;
    0|false|no|"") AUTH=0 ;;
    *) echo "mlflow-server.sh: MLFLOW_AUTH must be 1 or 0, not '$AUTH'" >&2; exit 2 ;;
esac

if [ "$PRINT" = 1 ]; then
    printf '%s\n' "${CMD[@]}"
    exit 0
fi

# The auth app's settings (tests/tracking_server.py:auth_config writes the same file). It
# names no secret of its own, but the database URI may carry a password: the file is 0600.
if [ "$AUTH" = 1 ]; then
    export MLFLOW_AUTH_ADMIN_USERNAME="${MLFLOW_AUTH_ADMIN_USERNAME:-admin}"
    if [ -z "${MLFLOW_FLASK_SERVER_SECRET_KEY:-}" ]; then
        MLFLOW_FLASK_SERVER_SECRET_KEY="$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')"
        export MLFLOW_FLASK_SERVER_SECRET_KEY
    fi
    if [ -z "${MLFLOW_AUTH_CONFIG_PATH:-}" ]; then
        AUTH_DB="${MLFLOW_AUTH_DATABASE_URI:-$BACKEND}"
        MLFLOW_AUTH_CONFIG_PATH="$(mktemp "${TMPDIR:-/tmp}/mlflow-basic-auth.XXXXXX")"
        export MLFLOW_AUTH_CONFIG_PATH
        # configparser reads % as interpolation: a percent-encoded URI needs %%.
        printf '[mlflow]\ndefault_permission = READ\ndatabase_uri = %s\n%s\n' \
            "${AUTH_DB//%/%%}" \
            'authorization_function = mlflow.server.auth:authenticate_request_basic_auth' \
            > "$MLFLOW_AUTH_CONFIG_PATH"
    fi
fi

# A folder is created (as the image does); an object-store URI is used as given.
case "$ARTIFACTS" in
    *://*) ;;
    *) mkdir -p "$ARTIFACTS" ;;
esac
exec "${CMD[@]}"
