"""Fixtures shared by the consensus tests (their code lives in tests/support)."""

from tests.support.runtime_cluster import cluster

__all__ = ["cluster"]
