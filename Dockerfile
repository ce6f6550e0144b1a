# The one build file of the Streamraft image: the broker (`streamraft broker ...`) and the operator
# (`streamraft-operator`). Works with docker and podman/buildah.
#
#   docker build -t ghcr.io/streamraft/streamraft:0.1.0 .       # from the public python:3.11-slim
#   bash .ci/prepare-image                                      # CI: podman, from a local Debian base
#
# BASE is any Debian-family image with python3 (>= 3.11, with the venv module), /bin/sh and useradd.
# CI builds it with mmdebstrap from Debian's mirror (no container registry is reachable there).
ARG BASE=python:3.11-slim

FROM ${BASE} AS build
# Optional pip settings for the build only (CI passes the machine's index and CA bundle); unset = PyPI.
ARG PIP_INDEX_URL
ARG PIP_CERT
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_PROGRESS_BAR=off
RUN python3 -m venv /opt/streamraft
WORKDIR /src
# Dependencies first, in a layer of their own: a source change does not download them again.
COPY pyproject.toml ./
RUN python3 -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))' \
      >requirements.txt \
 && /opt/streamraft/bin/pip install --no-compile -r requirements.txt \
 && /opt/streamraft/bin/python -m compileall -q -j 0 /opt/streamraft/lib
COPY README.md ./
COPY consensus ./consensus
COPY broker ./broker
COPY operator ./operator
# The project's wheel (no extras); pip check proves the layer above holds all it requires.
RUN /opt/streamraft/bin/pip install --no-compile --no-deps . \
 && /opt/streamraft/bin/pip check \
 && /opt/streamraft/bin/python -m compileall -q -j 0 /opt/streamraft/lib \
 && /opt/streamraft/bin/pip uninstall -y pip \
 && /opt/streamraft/bin/python -c 'import streamraft_broker.cli, streamraft_operator.main'

FROM ${BASE}
# tini as PID 1 forwards SIGTERM to streamraft and reaps children. The CI base already has it; on
# python:3.11-slim it comes from Debian's mirror.
RUN command -v tini >/dev/null 2>&1 \
 || { apt-get update && apt-get install -y --no-install-recommends tini && rm -rf /var/lib/apt/lists/*; }
# A fixed non-root uid/gid (10001) that the chart and the operator's pod specs run as.
RUN groupadd --gid 10001 streamraft \
 && useradd --uid 10001 --gid streamraft --home-dir /var/lib/streamraft --no-create-home \
      --shell /usr/sbin/nologin streamraft \
 && mkdir -p /var/lib/streamraft \
 && chown streamraft:streamraft /var/lib/streamraft
COPY --from=build /opt/streamraft /opt/streamraft
# Bytecode is compiled at build time, so a read-only root filesystem costs no startup time.
ENV PATH=/opt/streamraft/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# The only writable place the broker needs is its data dir: mount a volume here (and a tmpfs on /tmp).
WORKDIR /var/lib/streamraft
USER 10001:10001
# Kafka, Raft, broker metrics, operator metrics.
EXPOSE 9092 9093 9644 8080
ENTRYPOINT ["tini", "--", "streamraft"]
CMD ["--help"]
