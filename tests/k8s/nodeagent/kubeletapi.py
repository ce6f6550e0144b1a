"""The one kubelet endpoint worth having on a process node: container logs, so `kubectl logs`
(and `helm test --logs`) work. The apiserver proxies /api/v1/.../pods/<pod>/log to
https://<node InternalIP>:<daemonEndpoints.kubeletEndpoint.Port>/containerLogs/<ns>/<pod>/<container>.
exec/attach/port-forward need streaming protocols and are not offered.
"""

from __future__ import annotations

import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

# Marker lines the agent writes into a container's log file before each start.
START_MARKER = b"--- start "
_FOLLOW_LIMIT_S = 3600.0


def split_runs(data: bytes) -> list[bytes]:
    """The log file as one chunk per container start, markers removed."""
    runs: list[bytes] = []
    current: list[bytes] = []
    for line in data.splitlines(keepends=True):
        if line.startswith(START_MARKER):
            if current or runs:
                runs.append(b"".join(current))
            current = []
            continue
        current.append(line)
    runs.append(b"".join(current))
    return runs


# (namespace, pod, container) -> (log file, is the container running?)
Lookup = Callable[[str, str, str], tuple[Path, Callable[[], bool]] | None]


class KubeletApi:
    def __init__(self, host: str, cert: Path, key: Path, lookup: Lookup) -> None:
        lookup_fn = lookup

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass  # the apiserver logs requests already

            def do_GET(self) -> None:
                url = urllib.parse.urlsplit(self.path)
                parts = url.path.strip("/").split("/")
                if len(parts) != 4 or parts[0] != "containerLogs":
                    self.send_error(404, "only /containerLogs/<namespace>/<pod>/<container> is served here")
                    return
                found = lookup_fn(parts[1], parts[2], parts[3])
                if found is None:
                    self.send_error(
                        404, f"container {parts[3]} of pod {parts[1]}/{parts[2]} not on this node"
                    )
                    return
                path, running = found
                query = urllib.parse.parse_qs(url.query)
                previous = query.get("previous", ["false"])[0] == "true"
                follow = query.get("follow", ["false"])[0] == "true" and not previous
                tail = int(query["tailLines"][0]) if "tailLines" in query else None
                runs = split_runs(path.read_bytes()) if path.exists() else [b""]
                if previous and len(runs) < 2:
                    self.send_error(400, f"previous terminated container {parts[3]} not found")
                    return
                body = runs[-2] if previous else runs[-1]
                if tail is not None:
                    body = b"".join(body.splitlines(keepends=True)[-tail:]) if tail > 0 else b""
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                if not follow:
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(body)
                self.wfile.flush()
                self._follow(path, running)

            def _follow(self, path: Path, running: Callable[[], bool]) -> None:
                offset = path.stat().st_size
                deadline = time.monotonic() + _FOLLOW_LIMIT_S
                while time.monotonic() < deadline:
                    size = path.stat().st_size
                    if size > offset:
                        with open(path, "rb") as f:
                            f.seek(offset)
                            chunk = f.read(size - offset)
                        offset = size
                        try:
                            self.wfile.write(chunk)
                            self.wfile.flush()
                        except OSError:
                            return
                    elif not running():
                        return
                    time.sleep(0.2)

        self._server = ThreadingHTTPServer((host, 0), Handler)
        self._server.daemon_threads = True
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(cert), str(key))
        self._server.socket = ctx.wrap_socket(self._server.socket, server_side=True)
        self.port: int = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, name="kubelet-api", daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
