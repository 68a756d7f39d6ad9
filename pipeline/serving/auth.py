"""Optional bearer-token authentication of the service.

``serving.api_token_env`` names an environment variable (``STOCKPIPE_API_TOKEN`` in
``conf/base/serving.yaml``). When it is set and not empty, the routes given ``guard(token)`` as
dependencies (``POST /predict``, ``GET /model``, ``GET /metrics``) need
``Authorization: Bearer <token>`` and answer 401 otherwise; ``/health`` and ``/ready`` stay open
for probes and load balancers. The token is read once, when the app is built, and compared in
constant time. The guard is a FastAPI security dependency, so the OpenAPI document lists the
``bearer`` scheme and the operations that need it; without a token nothing is added.
"""

# No `from __future__ import annotations` here: FastAPI reads `check`'s annotation at runtime,
# and a postponed one would be resolved in the module's globals, where the local `scheme` is not.
import hmac
import os
from collections.abc import Mapping
from typing import Annotated

from fastapi import Depends, HTTPException, Security
from fastapi.params import Depends as Dependency
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from pipeline.settings import ServingConfig

SCHEME = "bearer"  # the security scheme's name in the OpenAPI document


def api_token(serving: ServingConfig, environ: Mapping[str, str] = os.environ) -> str | None:
    """The token the service requires, or None when authentication is off (no variable
    configured, or the variable unset or empty)."""
    if serving.api_token_env is None:
        return None
    return environ.get(serving.api_token_env) or None


def unauthorized(name: str | None) -> HTTPException:
    """401 with the header RFC 6750 asks for; never echoes what was sent."""
    where = f" (the value of ${name}, serving.api_token_env)" if name else ""
    return HTTPException(
        401,
        f"missing or invalid bearer token: send Authorization: Bearer <token>{where}",
        headers={"WWW-Authenticate": "Bearer"},
    )


def guard(token: str | None, name: str | None = None) -> list[Dependency]:
    """The dependencies of a protected route: none when ``token`` is None, else one that
    refuses (401) any request without ``Authorization: Bearer <token>``."""
    if token is None:
        return []
    # auto_error=False: a missing or non-Bearer header gets our 401 and message, not FastAPI's.
    scheme = HTTPBearer(
        auto_error=False,
        scheme_name=SCHEME,
        description=f"the value of ${name} on the server" if name else None,
    )
    expected = token.encode()

    async def check(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Security(scheme)],
    ) -> None:
        given = credentials.credentials.encode() if credentials is not None else b""
        # compare_digest: the time taken does not tell how much of a guess was right.
        if not hmac.compare_digest(given, expected):
            raise unauthorized(name)

    return [Depends(check)]
