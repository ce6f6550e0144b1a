"""A TCP relay from the bridge address to the apiserver on loopback.

Pods live in their own network namespaces and cannot reach the host's 127.0.0.1, where the apiserver
listens. In-cluster clients (KUBERNETES_SERVICE_HOST/PORT, as the agent sets them) connect here
instead; TLS passes through untouched (the serving certificate includes the bridge address).
"""

from __future__ import annotations

import contextlib
import socket
import threading

_BUFFER = 65536


class TcpRelay:
    def __init__(self, listen_host: str, target: tuple[str, int]) -> None:
        self._target = target
        self._server = socket.create_server((listen_host, 0))
        self.port: int = self._server.getsockname()[1]
        self._closed = False
        threading.Thread(target=self._accept_loop, name="apiproxy", daemon=True).start()

    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self._target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(_BUFFER):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)
            with contextlib.suppress(OSError):
                src.close()

    def close(self) -> None:
        self._closed = True
        self._server.close()
