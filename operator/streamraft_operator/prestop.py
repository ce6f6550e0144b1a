"""preStop hook of broker pods: ask the local broker to hand its Raft leaderships to other voters before the
SIGTERM that follows, so clients see a leader change instead of a timeout when the pod stops.

    python -m streamraft_operator.prestop [--admin-port 9645] [--token-file FILE] [--timeout 60]

`POST /admin/leadership/handoff` on the broker's admin port answers `{"moved": n, "of": m}` once every
leadership it held has moved (or its own bounded wait ran out: then n < m). The answer is what counts: a
gauge read afterwards could already show leaderships handed back by the preferred-leader balancer, which
only stops when the peers see this broker go away.

Talks to the broker only over HTTP on localhost, with the admin bearer token when one is configured
(``--token-file``, else ``STREAMRAFT_ADMIN_TOKEN_FILE`` / ``STREAMRAFT_ADMIN_TOKEN``: see admin_token).
A broker without the endpoint (404/refused) is left alone: the SIGTERM still stops it gracefully (it
hands off leaderships itself then). Always exits 0 so a failed hand-off never blocks pod termination
beyond the timeout.
"""

import argparse
import json
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass

from streamraft_operator.admin_token import AdminTokenError, admin_token, auth_headers

HANDOFF_PATH = "/admin/leadership/handoff"
MAX_ANSWER_BYTES = 64 * 1024


@dataclass(frozen=True)
class Handoff:
    moved: int
    of: int

    @property
    def complete(self) -> bool:
        return self.moved >= self.of


def parse_answer(body: bytes) -> Handoff:
    """`{"moved": n, "of": m}` -> Handoff; ValueError naming what was wrong otherwise."""
    try:
        data = json.loads(body)
    except json.JSONDecodeError as exc:
        raise ValueError(f"hand-off answer is not JSON: {body[:200]!r}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"hand-off answer is not an object: {data!r}")
    moved, of = data.get("moved"), data.get("of")
    counts = (moved, of)
    if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in counts):
        raise ValueError(f"hand-off answer needs non-negative integers moved and of: {data!r}")
    assert isinstance(moved, int) and isinstance(of, int)
    return Handoff(moved, of)


def request_handoff(port: int, timeout: float, token_file: str | None = None) -> Handoff | str:
    """The broker's answer, or why there is none."""
    try:
        token = admin_token(token_file=token_file)
    except AdminTokenError as exc:
        return str(exc)
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{HANDOFF_PATH}", data=b"", method="POST", headers=auth_headers(token)
    )
    try:
        with urllib.request.urlopen(req, timeout=max(1.0, timeout)) as resp:
            return parse_answer(resp.read(MAX_ANSWER_BYTES))
    except urllib.error.HTTPError as exc:
        return f"broker answered HTTP {exc.code} to POST {HANDOFF_PATH}"
    except (urllib.error.URLError, OSError) as exc:
        return f"POST {HANDOFF_PATH} failed: {exc}"
    except ValueError as exc:
        return str(exc)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m streamraft_operator.prestop", description=__doc__)
    # --metrics-port: what pods created before the admin API had its own port still pass.
    parser.add_argument("--admin-port", "--metrics-port", dest="port", type=int, default=9645)
    parser.add_argument("--token-file", help="file holding the admin bearer token")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait at most")
    args = parser.parse_args(argv)
    answer = request_handoff(args.port, args.timeout, args.token_file)
    if isinstance(answer, str):
        print(f"prestop: no leadership hand-off ({answer}); stopping without it", file=sys.stderr)
    elif answer.complete:
        print(f"prestop: handed off {answer.moved} of {answer.of} leaderships", file=sys.stderr)
    else:
        print(f"prestop: handed off only {answer.moved} of {answer.of} leaderships", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
