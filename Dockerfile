# One image for the broker (`streamraft broker ...`) and the operator (`streamraft-operator`).
# Build: docker build -t ghcr.io/streamraft/streamraft:0.1.0 .
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY consensus ./consensus
COPY broker ./broker
COPY operator ./operator
# confluent-kafka is the operator's Kafka Admin client; pinned as in pyproject.toml.
RUN pip install --no-cache-dir --prefix=/install . "confluent-kafka==2.16.1"

FROM python:3.11-slim
RUN groupadd --system --gid 10001 streamraft \
 && useradd --system --uid 10001 --gid streamraft --home-dir /var/lib/streamraft --shell /usr/sbin/nologin streamraft \
 && mkdir -p /var/lib/streamraft \
 && chown streamraft:streamraft /var/lib/streamraft
COPY --from=build /install /usr/local
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
WORKDIR /var/lib/streamraft
USER 10001:10001
# Kafka, Raft, broker metrics, operator metrics.
EXPOSE 9092 9093 9644 8080
ENTRYPOINT ["streamraft"]
CMD ["--help"]
