"""The bearer token the operator (and the preStop hook) send to brokers' admin API, when one is configured.

Read from the file named by ``STREAMRAFT_ADMIN_TOKEN_FILE`` — the same variable a broker reads its
``admin_token_file`` setting from, so a pod that configures its broker that way configures its preStop hook
too — or taken from ``STREAMRAFT_ADMIN_TOKEN``. Read on every call: a rotated Secret takes effect at once.
"""

import os
from collections.abc import Mapping
from pathlib import Path

TOKEN_FILE_ENV = "STREAMRAFT_ADMIN_TOKEN_FILE"
TOKEN_ENV = "STREAMRAFT_ADMIN_TOKEN"


class AdminTokenError(ValueError):
    pass


def admin_token(env: Mapping[str, str] | None = None, token_file: str | None = None) -> str | None:
    """The token, or None when none is configured; AdminTokenError names an unreadable or empty file."""
    env = os.environ if env is None else env
    path = token_file or env.get(TOKEN_FILE_ENV)
    if path:
        try:
            token = Path(path).read_text().strip()
        except OSError as exc:
            raise AdminTokenError(f"admin token file {path}: {exc.strerror}") from None
        if not token:
            raise AdminTokenError(f"admin token file {path} is empty")
        return token
    token = env.get(TOKEN_ENV, "").strip()
    return token or None


def auth_headers(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}
