"""Mapping a raw Stripe body in a unit test: the drafts, each read back unchanged through the
codec (catalogue, aggregate identity, document decoding), since what the hub stores is what
it reads back."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, TypeVar

from finsync.connectors.stripe.delivery import snapshot
from finsync.connectors.stripe.mapping import translate
from finsync.connectors.stripe.objects import SourceSettings
from finsync.connectors.stripe.taxes import rate_ids
from finsync.domain import codec
from finsync.domain.envelope import DraftEnvelope
from finsync.domain.events import AnyEvent
from tests.stripeshapes import delivered
from tests.stripeshapes.taxes import related_rates

SETTINGS = SourceSettings("le_us")
E = TypeVar("E", bound=AnyEvent)


def mapped(raw: bytes, settings: SourceSettings = SETTINGS) -> list[DraftEnvelope]:
    drafts = translate(settings, "stripe", raw)
    for draft in drafts:
        wire = json.loads(json.dumps(codec.draft_to_json(draft)))
        assert codec.draft_from_json(wire) == draft
    return drafts


def carried(evt: Mapping[str, Any], **related: Mapping[str, Any]) -> bytes:
    """The poller's delivery of `evt` with `related` beside it and the tax rates its own
    document names (`tests.stripeshapes.taxes.RATES`), as fetch-on-event carries them."""
    rates = related_rates(*rate_ids(snapshot(evt)))
    return delivered(dict(evt), related={**related, **rates})


def event_of(draft: DraftEnvelope, cls: type[E]) -> E:
    assert isinstance(draft.event, cls), f"{type(draft.event).__name__} is not {cls.__name__}"
    return draft.event


def only(raw: bytes, cls: type[E], settings: SourceSettings = SETTINGS) -> E:
    """The one event a body maps to, of class `cls`."""
    (draft,) = mapped(raw, settings)
    return event_of(draft, cls)
