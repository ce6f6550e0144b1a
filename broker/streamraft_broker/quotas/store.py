"""A single node's client quotas: the same ``alter_client_quotas`` commands the controller applies, kept in
``client-quotas.json`` in the data directory (written whole, fsynced, renamed into place)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from streamraft_broker.controller.commands import AlterClientQuotas
from streamraft_broker.log.fileio import atomic_write
from streamraft_broker.quotas.entities import ClientQuotas

log = logging.getLogger(__name__)

FILE_NAME = "client-quotas.json"
FORMAT_VERSION = 1


class QuotaFile:
    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / FILE_NAME
        self.quotas = ClientQuotas()

    def load(self) -> None:
        """Raises RuntimeError naming the file when it cannot be read (the broker refuses to start rather
        than run without the quotas it was given)."""
        if not self.path.exists():
            return
        try:
            doc: Any = json.loads(self.path.read_text())
            if not isinstance(doc, dict) or doc.get("version") != FORMAT_VERSION:
                raise ValueError(f"expected an object with version {FORMAT_VERSION}")
            self.quotas = ClientQuotas.from_json(doc["entities"])
        except (OSError, ValueError, KeyError) as exc:
            raise RuntimeError(f"cannot read client quotas {self.path}: {exc}") from exc
        log.info("loaded client quotas", extra={"entities": len(self.quotas.entities)})

    def apply(self, command: AlterClientQuotas) -> None:
        """Applies the command and makes it durable before returning; ValueError for an invalid one."""
        updated = ClientQuotas.from_json(self.quotas.to_json())
        updated.apply(command.alterations)
        self._save(updated)
        self.quotas = updated

    def _save(self, quotas: ClientQuotas) -> None:
        data = json.dumps({"version": FORMAT_VERSION, "entities": quotas.to_json()}, indent=1, sort_keys=True)
        atomic_write(self.path, data.encode())
