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
    for artifact in ("kafka_2.13", "kafka-clients", "kafka-tools", "kafka-server", "kafka-raft"):
        assert f"<artifactId>{artifact}</artifactId><version>9.9.9</version>" in pom
    assert "log4j-slf4j2-impl" in pom


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
    ):
        assert jar in names, f"{jar} missing from {fetch.libs_dir()}"
