"""Broker lifecycle: open topics, listen, serve metrics, write a ready file, shut down gracefully."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import shutil
import ssl
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from streamraft_broker.admin_http import AdminAuth, AdminAuthError, HttpLimits, start_admin_server
from streamraft_broker.config import BrokerConfig, ConfigError
from streamraft_broker.handlers.context import BrokerContext
from streamraft_broker.handlers.groups_wiring import install as install_groups_and_producers
from streamraft_broker.metrics import BrokerMetrics, start_metrics_server
from streamraft_broker.quotas.manager import QuotaManager
from streamraft_broker.quotas.sensor import WindowConfig
from streamraft_broker.quotas.store import QuotaFile
from streamraft_broker.security import outbound
from streamraft_broker.security.acl import AclError, AclSet, Authorizer, AuthorizerConfig
from streamraft_broker.security.acl_store import FileAclStore
from streamraft_broker.security.authenticators import (
    build_authenticators,
    check_sasl_settings,
    replicated_credentials,
)
from streamraft_broker.security.listeners import Listener, inter_broker_listener, parse_listeners
from streamraft_broker.security.raft_tls import raft_tls
from streamraft_broker.security.tls import KeystoreWatcher, server_context
from streamraft_broker.server import datadir_lock
from streamraft_broker.server.connection import Connection
from streamraft_broker.server.limits import (
    ConnectionAdmission,
    ConnectionLimits,
    RateLimitedLog,
    RequestMemory,
)
from streamraft_broker.server.log_cleaner import LogCleaner
from streamraft_broker.topics import broker_configs
from streamraft_broker.topics.broker_configs import LocalBrokerConfigs
from streamraft_broker.topics.registry import TopicRegistry
from streamraft_broker.transactions.service import TransactionService

log = logging.getLogger(__name__)

TLS_RELOAD_CHECK_S = 2.0
"""How often the SSL listeners' key files are checked for a renewed certificate (a stat per file)."""

SHUTDOWN_GRACE_S = 10.0
LIMIT_LOG_INTERVAL_S = 10.0
"""A repeating resource condition (refused connections, accept failing at the fd limit) is logged at most
once per this interval, with the count of occurrences in between."""
LOCK_WAIT_S = 30.0
"""How long a broker waits for a previous process on its data directory to exit (force-deleted pods)."""


def _cluster_id(data_dir: Path) -> str:
    """Stable per data directory, like Kafka's meta.properties."""
    path = data_dir / "cluster_id"
    if path.exists():
        return path.read_text().strip()
    cid = uuid.uuid4().hex[:22]
    path.write_text(cid + "\n")
    return cid


class Broker:
    def __init__(self, config: BrokerConfig) -> None:
        self.config = config
        self.metrics = BrokerMetrics()
        self.replication: Any = None
        # With Raft replication the Raft logs are the truth; local state is rebuilt from them at start.
        self._state_dir = config.data_dir / "state" if config.replication == "raft" else config.data_dir
        self.registry = TopicRegistry(self._state_dir, in_memory=config.in_memory)
        self.registry.set_static_defaults({"max.message.bytes": str(config.message_max_bytes)})
        self._servers: list[asyncio.Server] = []
        self.listeners: list[Listener] = []
        self.ports: dict[str, int] = {}
        """Bound port of each listener, by name."""
        self._metrics_server: Any = None
        self._admin_server: Any = None
        self.admin_port = 0
        self._connections: set[Connection] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0
        self.metrics_port = 0
        self.ctx: BrokerContext | None = None
        self._retention_task: asyncio.Task[None] | None = None
        self._tls_task: asyncio.Task[None] | None = None
        self._cleaner_task: asyncio.Task[None] | None = None
        self.log_cleaner: LogCleaner | None = None
        self._lock_fd: int | None = None
        self.request_memory = RequestMemory(config.queued_max_request_bytes)
        self.admission = ConnectionAdmission(config.max_connections, config.max_connections_per_ip)
        self._limit_log = RateLimitedLog(log, LIMIT_LOG_INTERVAL_S)
        self._connection_limits = ConnectionLimits(
            socket_request_max_bytes=config.socket_request_max_bytes,
            idle_s=config.connections_max_idle_ms / 1000,
            request_read_timeout_s=config.request_read_timeout_ms / 1000,
        )

    def _partition_stats(self) -> Iterator[tuple[str, int, int, int, int]]:
        for topic in list(self.registry.topics.values()):
            for p in topic.partitions:
                yield topic.name, p.index, p.size_bytes, p.log_start_offset, p.log_end_offset

    def _group_lag(self) -> Iterator[tuple[str, str, int, int]]:
        """Scraped from the metrics thread: reads snapshots (list copies) of coordinator state only."""
        assert self.ctx is not None and self.ctx.groups is not None
        for group, topic, index, committed in self.ctx.groups.coordinator.committed_offsets():
            partition = self.registry.partition(topic, index)
            if partition is not None:
                yield group, topic, index, max(partition.high_watermark - committed, 0)

    async def start(self) -> None:
        cfg = self.config
        cfg.data_dir.mkdir(parents=True, exist_ok=True)
        self._lock_fd = await datadir_lock.acquire(cfg.data_dir, LOCK_WAIT_S)
        if cfg.replication == "raft":
            from streamraft_broker.replication.service import check_raft_layout  # noqa: PLC0415

            problem = check_raft_layout(cfg.data_dir / "raft", cfg.raft_log == "partition")
            if problem is not None:
                raise ConfigError(problem)
            # Everything here is rebuilt from the Raft logs, except partition logs that ARE Raft logs.
            keep = {"logs"} if cfg.raft_log == "partition" else set()
            self._state_dir.mkdir(exist_ok=True)
            for entry in self._state_dir.iterdir():
                if entry.name in keep:
                    continue
                if entry.is_dir():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)
        self.registry.load()
        self.metrics.watch_partitions(self._partition_stats)
        self.listeners = parse_listeners(cfg)
        check_sasl_settings(cfg, self.listeners)
        tls = {
            x.security_protocol: server_context(cfg, x.security_protocol)
            for x in self.listeners
            if x.uses_tls
        }
        if tls:
            watcher = KeystoreWatcher(cfg, list(tls.values()))
            self._tls_task = asyncio.create_task(self._tls_reload_loop(watcher), name="tls-reload")
        advertised: dict[str, tuple[str, int]] = {}
        for listener in self.listeners:
            server = await asyncio.start_server(
                functools.partial(self._on_client, listener, tls.get(listener.security_protocol)),
                listener.host,
                listener.port,
                reuse_address=True,
                limit=1 << 20,
            )
            self._servers.append(server)
            port = int(server.sockets[0].getsockname()[1])
            self.ports[listener.name] = port
            host = listener.advertised_host or (
                listener.host if listener.host not in ("", "0.0.0.0", "::") else "127.0.0.1"
            )
            advertised[listener.name] = (host, listener.advertised_port or port)
        inter = inter_broker_listener(cfg, self.listeners)
        outbound.configure(cfg, inter)
        self.port = self.ports[self.listeners[0].name]
        adv_host, adv_port = advertised[inter.name]
        self._watch_accept_failures()
        self.ctx = BrokerContext(
            node_id=cfg.node_id,
            host=adv_host,
            port=adv_port,
            cluster_id=_cluster_id(cfg.data_dir),
            registry=self.registry,
            metrics=self.metrics,
            auto_create_topics=cfg.auto_create_topics_enable,
            default_partitions=cfg.num_partitions,
            default_replication_factor=cfg.default_replication_factor,
        )
        self.ctx.extra["advertised_listeners"] = advertised
        self.ctx.extra["authenticators"] = build_authenticators(cfg, self.ctx, cfg.data_dir)
        # Single node: group offsets and producer ids on local disk. Replicated: the groups and producer-id
        # services start here too, then replication re-points them at __consumer_offsets and the
        # controller's producer-id blocks.
        local_dir = cfg.data_dir / "local" if cfg.replication == "raft" else cfg.data_dir
        local_dir.mkdir(exist_ok=True)
        wire_optional_subsystems(self.ctx, local_dir)
        if cfg.replication != "raft" and not cfg.in_memory and self.ctx.producers and self.ctx.groups:
            # Single node on disk only: replicated mode has no transaction coordinator yet, and in-memory
            # partitions keep no batch headers to find open and aborted transactions in
            # (handlers.transactions answers COORDINATOR_NOT_AVAILABLE without one).
            self.ctx.extra["transactions"] = TransactionService(
                local_dir,
                self.registry,
                self.ctx.producers,
                self.ctx.groups,
                max_timeout_ms=cfg.transaction_max_timeout_ms,
                id_expiration_ms=cfg.transactional_id_expiration_ms,
            )
            # At start, not at the first transactional request: a transaction a crash left open must time
            # out (and one left half-ended must complete) even if its producer never returns, or the
            # partitions' last stable offset would hold read_committed consumers back for good.
            await self.ctx.extra["transactions"].ensure_started()
        self._install_authorizer()
        if cfg.replication != "raft" and not cfg.in_memory:
            self._load_local_broker_configs(local_dir)
        if cfg.replication == "raft":
            await self._start_replication()
            self._use_controller_acls()
        self._install_quotas()
        if self.ctx.groups is not None:
            self.metrics.watch_group_lag(self._group_lag)
        self._retention_task = asyncio.create_task(self._retention_loop(), name="retention")
        self._start_log_cleaner()
        limits = HttpLimits(cfg.admin_max_connections, cfg.admin_request_timeout_ms / 1000)
        if cfg.metrics_port is not None:
            self._metrics_server, self.metrics_port = start_metrics_server(
                self.metrics, cfg.metrics_host, cfg.metrics_port, limits
            )
        if cfg.admin_port is not None:
            auth = AdminAuth(cfg.admin_token_file, cfg.admin_tls_cert, cfg.admin_tls_key, cfg.admin_tls_ca)
            try:
                self._admin_server, self.admin_port = start_admin_server(
                    self.metrics, cfg.admin_host, cfg.admin_port, auth, limits
                )
            except AdminAuthError as exc:
                raise ConfigError(str(exc)) from None
        log.info(
            "broker ready",
            extra={
                "node_id": cfg.node_id,
                "port": self.port,
                "metrics_port": self.metrics_port,
                "admin_port": self.admin_port,
                "advertise": f"{adv_host}:{adv_port}",
                "listeners": {x.name: self.ports[x.name] for x in self.listeners},
            },
        )
        if cfg.ready_file is not None:
            tmp = cfg.ready_file.with_suffix(".tmp")
            tmp.write_text(
                json.dumps(
                    {
                        "port": self.port,
                        "metrics_port": self.metrics_port,
                        "admin_port": self.admin_port,
                        "pid": os.getpid(),
                        "listeners": self.ports,
                    }
                )
            )
            os.replace(tmp, cfg.ready_file)

    async def _start_replication(self) -> None:
        from streamraft_broker.replication.members import cluster_id_of, parse_members  # noqa: PLC0415
        from streamraft_broker.replication.service import ReplicationService  # noqa: PLC0415

        assert self.ctx is not None
        cfg = self.config
        members = parse_members(cfg.cluster_members)
        me = members.get(cfg.node_id)
        if me is None:
            raise ConfigError(f"--node-id {cfg.node_id} is not in --cluster-members {sorted(members)}")
        self.ctx.host, self.ctx.port = me.kafka_host, me.kafka_port
        inter = inter_broker_listener(cfg, self.listeners)
        if inter.advertised_host is None:
            # The members list is what clients and peers know this broker by on its inter-broker listener.
            self.ctx.extra["advertised_listeners"][inter.name] = (me.kafka_host, me.kafka_port)
        self.ctx.cluster_id = cfg.cluster_id or cluster_id_of(members)
        service = ReplicationService(
            cfg.node_id,
            members,
            cfg.data_dir / "raft",
            cfg.raft_listen or me.raft_address,
            self.registry,
            cluster_id=self.ctx.cluster_id,
            rack=cfg.rack,
            partition_raft_log=cfg.raft_log == "partition",
            controller_snapshot_entries=cfg.controller_snapshot_entries,
            allow_broker_join=cfg.allow_broker_join,
            auto_leader_rebalance=cfg.auto_leader_rebalance_enable,
            raft_tls=raft_tls(cfg),
        )
        service.producers = self.ctx.producers
        # Registered with the controller, so every broker can tell a listener's clients where the others
        # are on that listener (only with named listeners: a plain broker registers as before).
        service.listener_endpoints = (
            {name: f"{h}:{p}" for name, (h, p) in self.ctx.extra["advertised_listeners"].items()}
            if cfg.listeners.strip()
            else {}
        )
        self.ctx.extra["peer_listeners"] = functools.partial(_peer_listener, service)
        from streamraft_broker.replication.metrics import install as install_metrics  # noqa: PLC0415

        install_metrics(self.metrics, service)
        await service.start()
        self.replication = service
        self.ctx.extra["authenticators"].credentials = replicated_credentials(service)
        self.ctx.extra["replication"] = service

    def _install_authorizer(self) -> None:
        """ACLs from a file under the data directory (single node); a replicated broker holds none until
        its controller state is up (``_use_controller_acls``), so until then only super users pass."""
        assert self.ctx is not None
        cfg = self.config
        settings = AuthorizerConfig(
            enabled=bool(cfg.authorizer_class_name),
            super_users=cfg.super_users,
            allow_everyone_if_no_acl_found=cfg.allow_everyone_if_no_acl_found,
        )
        if cfg.replication == "raft":
            self.ctx.authorizer = Authorizer(settings, AclSet)
            return
        try:
            store = FileAclStore(cfg.data_dir)
        except AclError as exc:
            raise ConfigError(str(exc)) from None
        self.ctx.extra["acl_store"] = store
        self.ctx.authorizer = Authorizer(settings, store.current)

    def _load_local_broker_configs(self, directory: Path) -> None:
        """Without replication, dynamic broker configs live in a file here; the logs take them at once."""
        assert self.ctx is not None
        try:
            store = LocalBrokerConfigs(directory)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        self.ctx.extra["broker_configs"] = store
        self.registry.set_broker_layers(
            broker_configs.layers(store.entities, self.config.node_id, self.registry.static_defaults)
        )

    def _use_controller_acls(self) -> None:
        from streamraft_broker.replication.acls import ControllerAcls  # noqa: PLC0415

        assert self.ctx is not None
        store = ControllerAcls(self.replication)
        self.ctx.extra["acl_store"] = store
        self.ctx.authorizer.acls = store.current

    def _install_quotas(self) -> None:
        """Client quotas from the controller state (replicated) or the data directory's quota file."""
        assert self.ctx is not None
        cfg = self.config
        window = WindowConfig(cfg.quota_window_num, cfg.quota_window_size_seconds * 1000)
        registry = self.metrics.registry
        if self.replication is not None:
            service = self.replication
            self.ctx.quotas = QuotaManager(lambda: service.state.client_quotas, window, registry=registry)
            return
        store = QuotaFile(cfg.data_dir)
        store.load()
        self.ctx.quotas = QuotaManager(lambda: store.quotas, window, registry=registry, store=store)

    def _start_log_cleaner(self) -> None:
        cfg = self.config
        if not cfg.log_cleaner_enable:
            return
        # Replicated: segments are swapped under the Raft group's storage lock (see server/log_cleaner.py).
        swap = self.replication.swap_cleaned_segment if self.replication is not None else None
        self.log_cleaner = LogCleaner(
            self.registry,
            backoff_ms=cfg.log_cleaner_backoff_ms,
            map_bytes=cfg.log_cleaner_dedupe_buffer_size,
            metrics_registry=self.metrics.registry,
            replicated_swap=swap,
        )
        self._cleaner_task = asyncio.create_task(self.log_cleaner.run(), name="log-cleaner")

    async def _tls_reload_loop(self, watcher: KeystoreWatcher) -> None:
        while True:
            await asyncio.sleep(TLS_RELOAD_CHECK_S)
            watcher.check()

    async def _retention_loop(self) -> None:
        interval = self.config.retention_check_ms / 1000
        while True:
            await asyncio.sleep(interval)
            try:
                deleted = self.registry.apply_retention()
                if self.replication is not None:
                    deleted += await self.replication.apply_retention()
            except Exception:
                log.exception("retention pass failed")
                continue
            if deleted:
                log.info("retention deleted segments", extra={"segments": deleted})

    def _watch_accept_failures(self) -> None:
        """At the fd limit accept() fails. asyncio then pauses accepting for a second (existing connections
        are served meanwhile), but its accept loop goes on through the backlog and logs every failure with
        a traceback: thousands of lines a second for as long as the limit lasts, and one more per pending
        retry once the listener closes. This counts the failures in a metric and logs once per interval."""
        loop = asyncio.get_running_loop()
        previous = loop.get_exception_handler()
        servers = list(self._servers)
        ours = {s.fileno() for server in servers for s in server.sockets}

        def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
            message = str(context.get("message", ""))
            sock = context.get("socket")
            exc = context.get("exception")
            if message.startswith("socket.accept() out of system resource") and (
                sock is not None and sock.fileno() in ours
            ):
                self.metrics.accept_failures.inc()
                self._limit_log.warning(
                    "accept",
                    "cannot accept connections: %s; accepting pauses for 1 s each time (existing "
                    "connections are still served). Raise the open-files limit or lower max.connections",
                    exc,
                )
                return
            if "._start_serving(" in message and not any(server.is_serving() for server in servers):
                return  # an accept retry scheduled above, running after the listener closed
            if previous is not None:
                previous(loop, context)
            else:
                loop.default_exception_handler(context)

        loop.set_exception_handler(handler)

    async def _on_client(
        self,
        listener: Listener,
        tls: ssl.SSLContext | None,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        assert self.ctx is not None
        peername = writer.get_extra_info("peername")
        host = str(peername[0]) if peername else "unknown"
        refused = self.admission.admit(host)
        if refused is not None:
            self.metrics.connections_refused.labels(refused).inc()
            limit = (
                self.config.max_connections
                if refused == "max_connections"
                else self.config.max_connections_per_ip
            )
            self._limit_log.warning(
                refused,
                "refusing connection from %s: %s (%d) reached",
                host,
                refused.replace("_", "."),
                limit,
                peer=host,
                reason=refused,
            )
            writer.transport.abort()
            return
        try:
            await self._serve_client(listener, tls, reader, writer)
        finally:
            self.admission.release(host)

    async def _serve_client(
        self,
        listener: Listener,
        tls: ssl.SSLContext | None,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        assert self.ctx is not None
        conn = Connection(
            self.ctx,
            reader,
            writer,
            limits=self._connection_limits,
            # sendfile would bypass TLS: those connections use the positional-read path.
            zero_copy=self.config.zero_copy and not listener.uses_tls,
            memory=self.request_memory,
            listener=listener,
            tls=tls,
        )
        self._connections.add(conn)
        self.metrics.connections.inc()
        self.metrics.connections_total.inc()
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await conn.run()
        except asyncio.CancelledError:
            # Only stop() cancels these; ending quietly keeps asyncio from logging a spurious error.
            return
        finally:
            self._connections.discard(conn)
            self._tasks.discard(task)
            self.metrics.connections.dec()

    async def stop(self) -> None:
        """Stop accepting, let in-flight requests finish (bounded), flush logs, close."""
        for server in self._servers:
            server.close()
        if self._retention_task is not None:
            self._retention_task.cancel()
        if self._tls_task is not None:
            self._tls_task.cancel()
        if self._cleaner_task is not None:
            self._cleaner_task.cancel()
        for conn in list(self._connections):
            conn.closing = True
        if self.ctx is not None:
            self.ctx.shutting_down.set()
        deadline = asyncio.get_running_loop().time() + SHUTDOWN_GRACE_S
        loop = asyncio.get_running_loop()
        # Polls in-flight requests against a deadline; an Event per request would cost on the hot path.
        while any(c.busy for c in self._connections) and loop.time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        # Idle connections (or ones stuck past the grace period) are cut; their tasks then end by EOF.
        for conn in list(self._connections):
            conn.writer.transport.abort()
        if self._tasks:
            _done, pending = await asyncio.wait(list(self._tasks), timeout=SHUTDOWN_GRACE_S)
            for task in pending:
                task.cancel()
        if self._metrics_server is not None:
            self._metrics_server.shutdown()
        if self._admin_server is not None:
            self._admin_server.shutdown()
        if self.replication is not None:
            await self.replication.stop()
        if self.ctx is not None:
            # Producer snapshots and group state go before the logs they live beside are closed.
            transactions = self.ctx.extra.get("transactions")
            if transactions is not None:
                transactions.close()
            if self.ctx.producers is not None:
                self.ctx.producers.close()
            if self.ctx.groups is not None:
                self.ctx.groups.close()
        self.registry.flush_all()
        self.registry.close()
        if self._lock_fd is not None:
            datadir_lock.release(self._lock_fd)
            self._lock_fd = None
        log.info("broker stopped")


def _peer_listener(service: Any, node_id: int, listener: str) -> tuple[str, int] | None:
    """Broker ``node_id``'s advertised endpoint on ``listener``, from its registration."""
    reg = service.state.brokers.get(node_id)
    address = reg.listeners.get(listener) if reg is not None else None
    if address is None:
        return None
    host, _, port = address.rpartition(":")
    return host, int(port)


def id_of(member: Any) -> int:
    return int(member.node_id)


def wire_optional_subsystems(ctx: BrokerContext, data_dir: Path) -> None:
    """The consumer-group coordinator and idempotent-producer state."""
    install_groups_and_producers(ctx, data_dir)
