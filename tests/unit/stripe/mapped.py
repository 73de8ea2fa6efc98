"""Mapping a raw Stripe body in a unit test: the drafts, each read back unchanged through the
codec (catalogue, aggregate identity, document decoding), since what the hub stores is what
it reads back."""

from __future__ import annotations

import json
from typing import TypeVar

from finsync.connectors.stripe.mapping import translate
from finsync.connectors.stripe.objects import SourceSettings
from finsync.domain import codec
from finsync.domain.envelope import DraftEnvelope
from finsync.domain.events import AnyEvent

SETTINGS = SourceSettings("le_us")
E = TypeVar("E", bound=AnyEvent)


def mapped(raw: bytes, settings: SourceSettings = SETTINGS) -> list[DraftEnvelope]:
    drafts = translate(settings, "stripe", raw)
    for draft in drafts:
        wire = json.loads(json.dumps(codec.draft_to_json(draft)))
        assert codec.draft_from_json(wire) == draft
    return drafts


def event_of(draft: DraftEnvelope, cls: type[E]) -> E:
    assert isinstance(draft.event, cls), f"{type(draft.event).__name__} is not {cls.__name__}"
    return draft.event


def only(raw: bytes, cls: type[E], settings: SourceSettings = SETTINGS) -> E:
    """The one event a body maps to, of class `cls`."""
    (draft,) = mapped(raw, settings)
    return event_of(draft, cls)
