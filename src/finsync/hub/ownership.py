"""Ownership: what a change sent by a system that does not own its domain is.

Rules:
- A `customer.upserted` from a non-owner whose master fields (`MASTER_FIELDS`: name,
  address, billing country and region, tax id, currency, legal entity) equal those of the
  owner's latest accepted version of that customer is an *echo*: the non-owner repeats
  what the owner told it (billing keeping the CRM's customer, then sending it back). It is
  recorded as a duplicate of the owner's event (reason `echo`) and routed nowhere. Its
  version, external references and any field outside the master do not count.
- One that differs in a master field is an `ownership_violation` that names the fields
  that differ (`domain.diff`); the detail shows each change, a sensitive field as changed,
  never its value (`told`).
- Any other change from a non-owner, and a customer the owner has not told the hub of
  yet, is an `ownership_violation` as it always was.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection

from finsync.domain import codec, diff
from finsync.domain.codec import JsonValue
from finsync.domain.envelope import Envelope
from finsync.domain.events import CustomerUpserted
from finsync.domain.sensitive import classify_path, placeholder
from finsync.storage import event_log

ECHO = "echo"  # the duplicate record's reason for an echo
# The customer master's fields: those a non-owner may repeat but never change.
MASTER_FIELDS = ("name", "address", "billing_country", "billing_region", "tax_id",
                 "currency", "legal_entity")
_PREFIX = "customer."  # the codec's name of a customer.upserted's document


@dataclass(frozen=True, slots=True)
class Echo:
    """The non-owner's event repeats the owner's `owner_event_id`."""

    owner_event_id: str


@dataclass(frozen=True, slots=True)
class Violation:
    summary: str
    detail: str | None = None


def judge(conn: Connection, env: Envelope, owner: str | None) -> Echo | Violation:
    """What `env`, sent by a system other than its domain's `owner`, is."""
    refused = f"{env.source} sent {env.type}, but {owner} owns that domain"
    if not isinstance(env.event, CustomerUpserted) or owner is None:
        return Violation(refused)
    known = event_log.latest_accepted(conn, env.aggregate.type, env.aggregate.id, owner)
    if known is None:
        return Violation(f"{refused} (it has sent no version of {env.aggregate.id} yet)")
    found = tuple(told(c) for c in diff.changes(_master(known), _master(env)))
    if not found:
        return Echo(known.event_id)
    fields = ", ".join(dict.fromkeys(c.path.removeprefix(_PREFIX) for c in found))
    return Violation(f"{refused}: {env.aggregate.id} differs from {owner}'s version "
                     f"{known.aggregate.version} in {fields}", diff.describe(found))


def _master(env: Envelope) -> JsonValue:
    """The master fields of a customer.upserted, under the codec's own names (absent and
    null alike: a field a version lacks holds nothing)."""
    encoded = codec.encode_event(env.event)
    customer = encoded.get("customer")
    assert isinstance(customer, dict)  # the codec's encoding of a CustomerUpserted
    return {"customer": {name: customer.get(name) for name in MASTER_FIELDS}}


def told(change: diff.Change) -> diff.Change:
    """A change as an exception's detail shows it: a sensitive field says that it changed,
    never what it held (`domain.sensitive`)."""
    found = classify_path(change.path)
    if found is None:
        return change
    shown = placeholder(found)
    return diff.Change(change.path, diff.ABSENT if change.before == diff.ABSENT else shown,
                       diff.ABSENT if change.after == diff.ABSENT else shown)
