"""The jar fetcher's contract: a clear error when the jars are missing, and a pom naming what we need."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.javakafka import fetch


def test_classpath_without_jars_says_how_to_fetch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMRAFT_CACHE", str(tmp_path))
    assert not fetch.is_fetched()
    with pytest.raises(fetch.FetchError, match=r"prepare-kafka"):
        fetch.classpath()


def test_pom_pins_the_version_and_names_the_tools() -> None:
    pom = fetch._pom("9.9.9")
    for artifact in (
        "kafka_2.13",
        "kafka-clients",
        "kafka-tools",
        "kafka-server",
        "kafka-raft",
        "kafka-streams",
        "connect-runtime",
        "connect-file",
    ):
        assert f"<artifactId>{artifact}</artifactId><version>9.9.9</version>" in pom
    assert "log4j-slf4j2-impl" in pom
    # The slf4j 2 API the log4j binding needs, not the 1.7 one kafka-clients would bring (no logs at all).
    assert f"<artifactId>slf4j-api</artifactId><version>{fetch.SLF4J_VERSION}</version>" in pom
    assert fetch.SLF4J_VERSION.startswith("2.")


def test_a_cache_fetched_from_another_artifact_list_counts_as_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # CI machines keep ~/.cache between runs: a copy made before kafka-streams joined the list must be fetched
    # again, not used as complete.
    monkeypatch.setenv("STREAMRAFT_CACHE", str(tmp_path))
    stamp = fetch.kafka_home() / "complete.stamp"
    stamp.parent.mkdir(parents=True)
    stamp.write_text(f"{fetch.KAFKA_VERSION} 92 jars\n")  # the stamp written before the list had a digest
    assert not fetch.is_fetched()
    with pytest.raises(fetch.FetchError, match=r"another artifact list.*prepare-kafka"):
        fetch.classpath()
    stamp.write_text(fetch._stamp_text(fetch.KAFKA_VERSION, 94))
    assert fetch.is_fetched()
    monkeypatch.setattr(
        fetch, "_KAFKA_ARTIFACTS", tuple(a for a in fetch._KAFKA_ARTIFACTS if a != "kafka-streams")
    )
    assert not fetch.is_fetched(), "the digest must follow the artifact list"


@pytest.mark.java
def test_fetched_jars_hold_the_broker_and_tools() -> None:
    # .ci/prepare-kafka runs before pytest, so the pinned version must be in the cache.
    assert fetch.is_fetched(), f"run `bash .ci/prepare-kafka` first (looked in {fetch.kafka_home()})"
    names = {p.name for p in fetch.libs_dir().glob("*.jar")}
    v = fetch.KAFKA_VERSION
    for jar in (
        f"kafka_2.13-{v}.jar",
        f"kafka-clients-{v}.jar",
        f"kafka-tools-{v}.jar",
        f"kafka-raft-{v}.jar",
        f"kafka-streams-{v}.jar",
        f"connect-runtime-{v}.jar",
        f"connect-file-{v}.jar",
        f"slf4j-api-{fetch.SLF4J_VERSION}.jar",
    ):
        assert jar in names, f"{jar} missing from {fetch.libs_dir()}"
