"""The composition root: the only module that picks concrete adapters."""

from __future__ import annotations

import os
import socket

from sqlalchemy import Engine

from finsync.config import FinsyncConfig
from finsync.connectors.filedrop.ledger import FileDropLedger
from finsync.domain.clock import utc_now
from finsync.hub.mapping import CanonicalMapper, Mapper, MapperRegistry
from finsync.hub.service import Hub
from finsync.hub.target import Target, ledger_target
from finsync.storage.db import make_engine
from finsync.storage.migrate import upgrade


def build_targets(config: FinsyncConfig) -> dict[str, Target]:
    targets: dict[str, Target] = {}
    for name, system in config.systems.items():
        if system.role == "ledger" and system.connector == "filedrop":
            targets[name] = ledger_target(FileDropLedger(name, config.resolve(system.directory)))
        else:
            raise ValueError(f"no {system.connector} connector for role {system.role}")
    return targets


def build_mappers(config: FinsyncConfig) -> MapperRegistry:
    kinds: dict[str, Mapper] = {"canonical": CanonicalMapper()}
    return MapperRegistry({source: kinds[kind] for source, kind in config.sources.items()})


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def build_engine(config: FinsyncConfig) -> Engine:
    url = config.database_url
    if url.startswith("sqlite:///") and ":memory:" not in url:
        config.resolve(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    return make_engine(url)


def build_hub(config: FinsyncConfig, *, engine: Engine | None = None,
              migrate: bool = True) -> Hub:
    engine = engine or build_engine(config)
    if migrate:
        upgrade(engine)
    return Hub(engine, config.hub_settings(), build_mappers(config), build_targets(config),
               utc_now, worker_id())
