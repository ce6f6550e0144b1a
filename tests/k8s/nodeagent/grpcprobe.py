"""gRPC health probe (grpc.health.v1.Health/Check) run as a child process inside a pod's netns.

grpcio opens its sockets on its own internal threads, so it cannot simply borrow the agent's
per-pod prober thread namespace; a short-lived child started from that thread inherits the namespace.
The two tiny protobuf messages are encoded by hand to avoid needing the grpc-health package.
Exit status 0 means SERVING.
"""

from __future__ import annotations

import sys

import grpc

_SERVING = 1


def main() -> int:
    host, port, service, timeout = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
    name = service.encode()
    assert len(name) < 128, "service name too long for the one-byte length prefix used here"
    request = (b"\x0a" + bytes([len(name)]) + name) if name else b""
    with grpc.insecure_channel(f"{host}:{port}") as channel:
        check = channel.unary_unary(
            "/grpc.health.v1.Health/Check", request_serializer=None, response_deserializer=None
        )
        try:
            response: bytes = check(request, timeout=timeout)
        except grpc.RpcError as exc:
            print(f"grpc probe: {exc}", file=sys.stderr)
            return 1
    status = response[1] if len(response) >= 2 and response[0] == 0x08 else 0
    return 0 if status == _SERVING else 1


if __name__ == "__main__":
    sys.exit(main())
