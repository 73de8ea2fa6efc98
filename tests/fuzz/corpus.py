"""Hand-picked hostile bodies: the issue's findings 1-6 spelt out, plus the edges of every
limit (just under, at, just over) and bodies that are not JSON at all.

Each probe says what the route must answer: `REFUSED` (a 4xx with a code, at once),
`ACCEPTED` (a 2xx), or `ANY` (anything but a 5xx or an uncoded 4xx, which every request
must meet). `serials()` gives ids no other request uses.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tests.fuzz.fuzzkit import BODY_MAX_BYTES
from tests.fuzz.mutants import (
    BAD_DATES,
    HUGE_AMOUNTS,
    RAW,
    RAW_NUMBERS,
    canonical_invoice,
    canonical_payment,
    nested,
    padded,
    replaced,
    serialise,
    stripe_invoice_paid,
)

Serials = Callable[[], int]
REFUSED, ACCEPTED, ANY = "refused", "accepted", "any"


@dataclass(frozen=True, slots=True)
class Probe:
    label: str
    body: bytes
    expect: str = ANY


DEPTHS = (33, 100, 1_000, 5_000, 20_000, 32_000, 100_000)  # 32,000 arrays fit in 64 KiB
ODD_BODIES = (b"", b" ", b"null", b"[]", b"{}", b"1", b'"x"', b"true", b"\x00", b"\xff\xfe",
              b"[" * 10, b'{"type": "invoice.issued"}', b'{"a": NaN}', b"[1e400]",
              b'{"payload": {"invoice": {"total": 1e400}}}', b"\xef\xbb\xbf{}")
LONG_IDS = (255, 256, 1_000, 10_000, 60_000)
ID_PATHS: tuple[tuple[str | int, ...], ...] = (
    ("source_event_id",), ("correlation_id",), ("source",), ("aggregate", "id"),
    ("aggregate", "type"), ("payload", "payment", "id"), ("payload", "payment", "customer_id"),
    ("payload", "payment", "currency"), ("payload", "payment", "legal_entity"))
DATE_PATHS: tuple[tuple[str | int, ...], ...] = (
    ("occurred_at",), ("payload", "payment", "received_on"))
# Out of any accounting-plausible window, or no date at all (finding 6).
REFUSED_DATES = ("9999-12-31", "1900-01-01", "0001-01-01", "2026-02-30", "2026-13-01")


def _nesting(expect: str) -> list[Probe]:
    out: list[Probe] = []
    for depth in DEPTHS:
        out.append(Probe(f"{depth:,} nested arrays", nested(depth), expect))
        out.append(Probe(f"{depth:,} nested objects", nested(depth, b"0", b'{"a":', b"}"),
                         expect))
    return out


def _inside_an_envelope(serials: Serials) -> list[Probe]:
    """Deep nesting and raw JSON numbers where a valid envelope has a string."""
    out: list[Probe] = []
    for depth in (40, 2_000, 20_000):
        doc = replaced(canonical_invoice(serials()), ("payload", "invoice", "lines", 0,
                                                        "description"), RAW)
        out.append(Probe(f"description of {depth:,} nested arrays",
                         serialise(doc, nested(depth).decode()), REFUSED))
    for raw in RAW_NUMBERS:
        doc = replaced(canonical_payment(serials()), ("payload", "payment", "amount"), RAW)
        out.append(Probe(f"raw number {raw[:12]} as amount", serialise(doc, raw), REFUSED))
    return out


def _amounts(serials: Serials) -> list[Probe]:
    """Documents that add up, with a huge or malformed amount everywhere it appears
    (findings 2 and 6: none of these is an amount finsync may book)."""
    out: list[Probe] = []
    for amount in HUGE_AMOUNTS:
        payment = json.dumps(canonical_payment(serials(), amount)).encode()
        out.append(Probe(f"payment of {amount[:16]!r}", payment, REFUSED))
        invoice = json.dumps(canonical_invoice(serials(), amount)).encode()
        out.append(Probe(f"invoice of {amount[:16]!r}", invoice, REFUSED))
    return out


def _elements() -> list[Probe]:
    return [Probe("5,000 elements", b"[" + b",".join([b"0"] * 5_000) + b"]", REFUSED),
            Probe("3,000 keys", json.dumps({f"k{i}": 0 for i in range(3_000)}).encode(),
                  REFUSED)]


def _ids_and_dates(serials: Serials) -> list[Probe]:
    out: list[Probe] = []
    for path in ID_PATHS:
        for size in LONG_IDS:
            doc = replaced(canonical_payment(serials()), path, "i" * size)
            out.append(Probe(f"{'.'.join(map(str, path))} of {size:,} chars", serialise(doc),
                             REFUSED if size > 255 else ANY))
    for path in DATE_PATHS:
        for day in BAD_DATES:
            doc = replaced(canonical_payment(serials()), path, day)
            out.append(Probe(f"{'.'.join(map(str, path))} = {day}", serialise(doc),
                             REFUSED if day in REFUSED_DATES else ANY))
    return out


def _sizes(valid: bytes) -> list[Probe]:
    return [Probe("exactly the body limit", padded(valid, BODY_MAX_BYTES), ACCEPTED),
            Probe("one byte over the body limit", padded(valid, BODY_MAX_BYTES + 1), REFUSED),
            Probe("1 MiB", padded(valid, 1 << 20), REFUSED),
            Probe("4 MiB", padded(valid, 4 << 20), REFUSED)]


def canonical_corpus(serials: Serials) -> list[Probe]:
    valid = json.dumps(canonical_payment(serials())).encode()
    return [*_nesting(REFUSED), *_inside_an_envelope(serials), *_amounts(serials),
            *_elements(), *_ids_and_dates(serials), *_sizes(valid),
            *(Probe(f"odd body {body[:12]!r}", body, REFUSED) for body in ODD_BODIES)]


def stripe_corpus(serials: Serials) -> list[Probe]:
    """Bodies for the webhook route, to be sent signed: a verified body is stored and
    mapped in the pipeline, so only the body limit is known to refuse at once."""
    out = _nesting(ANY)
    for minor in (10**15, 10**17, 10**19, 10**40, -(10**17)):
        body = json.dumps(stripe_invoice_paid(serials(), minor)).encode()
        out.append(Probe(f"invoice.paid of {minor:.0e} minor units", body))
    for raw in RAW_NUMBERS:
        doc: Any = replaced(stripe_invoice_paid(serials()), ("data", "object", "total"), RAW)
        out.append(Probe(f"raw number {raw[:12]} as total", serialise(doc, raw)))
    out.extend(Probe(p.label, p.body) for p in _elements())
    out.extend(_sizes(json.dumps(stripe_invoice_paid(serials())).encode()))
    out.extend(Probe(f"odd body {body[:12]!r}", body) for body in ODD_BODIES)
    return out
