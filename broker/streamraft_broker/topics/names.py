"""Kafka's topic-name rule, shared by every place a name enters: CreateTopics, auto-creation, the CLI and
the controller's state machine (which re-checks at apply time, so a command from any source is safe).

Kafka (``org.apache.kafka.common.internals.Topic.validate``): 1..249 characters of ASCII letters, digits,
``.``, ``_`` and ``-``; not ``.`` or ``..`` (they would name the log directory's parent or itself).
"""

from __future__ import annotations

import re

MAX_TOPIC_NAME_LENGTH = 249
INVALID_TOPIC_EXCEPTION = 17
"""Kafka's error code for a topic name that breaks the rule."""

# fullmatch, not match with ``$``: ``$`` also matches before a trailing newline, which let ``abc\n`` in.
_LEGAL = re.compile(r"[a-zA-Z0-9._-]+")


class InvalidTopicNameError(ValueError):
    """A topic name that breaks Kafka's rule; the message says which part of it."""

    error_code = INVALID_TOPIC_EXCEPTION


def topic_name_problem(name: object) -> str | None:
    """What is wrong with ``name`` as a topic name, or None when it is legal."""
    if not isinstance(name, str):
        return f"topic name must be a string, not {type(name).__name__}"
    if not name:
        return "topic name must not be empty"
    if name in (".", ".."):
        return f"topic name {name!r} is not allowed"
    if len(name) > MAX_TOPIC_NAME_LENGTH:
        return f"topic name is {len(name)} characters long; the maximum is {MAX_TOPIC_NAME_LENGTH}"
    if _LEGAL.fullmatch(name) is None:
        return f"topic name {name!r} may only hold ASCII letters, digits, '.', '_' and '-'"
    return None


def check_topic_name(name: object) -> str:
    """Returns ``name`` when legal; raises InvalidTopicNameError naming the problem otherwise."""
    problem = topic_name_problem(name)
    if problem is not None:
        raise InvalidTopicNameError(problem)
    assert isinstance(name, str)
    return name
