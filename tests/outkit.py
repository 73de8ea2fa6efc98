"""Reading what events out published: the `<NS>_OUT` stream's messages, in stream order,
read back with nats-py directly (not through finsync's client, which is under test)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import nats
from nats.js.errors import NotFoundError

from finsync.streaming.settings import TransportSettings


@dataclass(frozen=True, slots=True)
class Published:
    subject: str
    msg_id: str
    body: dict[str, Any]


def published(settings: TransportSettings) -> list[Published]:
    """Every message of `settings`' OUT stream, in stream order."""
    return asyncio.run(_read(settings, settings.stream("OUT")))


async def _read(settings: TransportSettings, stream: str) -> list[Published]:
    nc = await nats.connect(servers=list(settings.servers))
    try:
        js = nc.jetstream()
        info = await js.stream_info(stream)
        found: list[Published] = []
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            try:
                msg = await js.get_msg(stream, seq)
            except NotFoundError:
                continue
            headers = msg.headers or {}
            found.append(Published(msg.subject or "", headers.get("Nats-Msg-Id", ""),
                                   json.loads(msg.data or b"{}")))
        return found
    finally:
        await nc.close()


def events_of(messages: list[Published]) -> list[Published]:
    return [m for m in messages if m.body.get("format") == "finsync.event/1"]


def milestones_of(messages: list[Published]) -> list[Published]:
    return [m for m in messages if m.body.get("format") == "finsync.milestone/1"]
