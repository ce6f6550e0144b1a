"""Kafka client quotas: per user and/or client-id byte-rate and request-time quotas.

``entities`` holds the quota configuration (Kafka's entity names, keys, validation and the eight-level
precedence) and the ``alter_client_quotas`` command that changes it, applied alike by the controller state
(replicated) and by the single-node file (``store``). ``sensor`` is Kafka's sliding-window rate and throttle
arithmetic, sans I/O. ``manager`` keeps the sensors of active clients and answers "how long to throttle";
``accounting`` carries one request's size, identity and handler time from the connection to the handlers.
"""
