"""Valid payloads and the ways a careless or hostile sender breaks them.

Rules:
- Every mutant starts from a valid payload with ids of its own (`serial`): a canonical
  envelope built by `tests.builders`, or a Stripe event built by `tests.unit.stripe.payloads`.
- A mutant is data (what to break, where, with what), drawn by hypothesis; `bodies` applies
  it to every base payload of a route (one example, several requests). So a run is
  reproducible from the seed, and nothing is asserted inside hypothesis (no shrinking, no
  replays: each request is sent once).
- Leaf mutations replace one scalar anywhere in the document: control characters and NUL,
  over-long strings, huge or malformed amounts (also as raw JSON numbers: 1e400, 40 digits),
  implausible dates, wrong types. Body mutations work on the bytes: truncated, invalid UTF-8,
  nested deep, padded over (or exactly to) the body limit, batched with a good event.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

from tests.builders import contract_doc, envelope, invoice_doc, payment_doc
from tests.fuzz.fuzzkit import BODY_MAX_BYTES
from tests.unit.stripe.payloads import event, invoice, line

LeafPath = tuple[str | int, ...]  # keys and indexes from the root to one scalar
RAW = "@@raw-json@@"  # a leaf to be replaced by a raw JSON token after serialising
BAD_UTF8 = "@@bad-utf8@@"  # a leaf to be replaced by bytes that are not UTF-8

CONTROL_CHARS = ("\x00", "\x01", "\x1b", "\x7f", "\u2028", "\ud800")
HUGE_AMOUNTS = ("1e17", "1E+17", "100000000000000000", "100000000000000000.00", "9" * 40,
                "1" + "0" * 39 + ".00", "-1e17", "1e16", "10000000000000000.00", "1e3",
                "+10.00", " 10.00", "10.00 ", "10.005", "0.001", "NaN", "-Infinity", "1e-400",
                "1e400", "0x10", "1,000.00", "1_000.00", "\u0661\u0660", "")
SIGNED = ("-0.00", "-10.00")  # a sign may be fine where an amount can be negative
RAW_NUMBERS = ("1e17", "1E400", "-1e400", "1" + "0" * 40, "1234567890123456789012345678.5",
               "NaN", "Infinity", "-0", "1e-400", "0.1e1", "100000000000000000")
BAD_DATES = ("9999-12-31", "1900-01-01", "0001-01-01", "2026-02-30", "2026-13-01", "20260101",
             "2026-01-01T25:61:00+00:00", "+275760-09-13", "2026-1-1", "1970-01-01T00:00:00",
             "2026-01-01T09:00:00+99:00")
INVALID_UTF8 = (b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"\x80abc")
BODY_OPS = ("truncate", "bad_utf8", "bom", "trailing", "duplicate_key", "nest", "batch",
            "pad_over", "pad_to_limit")


# -- valid payloads ----------------------------------------------------------------------------

def canonical_invoice(serial: int, amount: str = "120.00") -> dict[str, Any]:
    inv = f"inv_fz{serial}"
    return envelope("invoice.issued", f"{inv}-issued", ("invoice", inv, 1),
                    {"invoice": invoice_doc(inv, amount, customer=f"cus_fz{serial % 50}")},
                    correlation_id=f"fz-{serial}", source="stripe")


def canonical_payment(serial: int, amount: str = "120.00") -> dict[str, Any]:
    pay = f"pay_fz{serial}"
    return envelope("payment.applied", f"{pay}-applied", ("payment", pay, None),
                    {"payment": payment_doc(pay, amount, f"inv_fz{serial}",
                                            customer=f"cus_fz{serial % 50}")},
                    correlation_id=f"fz-{serial}", source="stripe")


def canonical_contract(serial: int) -> dict[str, Any]:
    con = f"con_fz{serial}"
    return envelope("contract.created", f"{con}-created", ("subscription_contract", con, 1),
                    {"contract": contract_doc(con, 1, 10, "120.00", f"cus_fz{serial % 50}")},
                    correlation_id=f"fz-{serial}", source="stripe")


def stripe_invoice_paid(serial: int, amount_minor: int = 12_000) -> dict[str, Any]:
    obj = invoice([line(f"il_fz{serial}", amount_minor)], amount_minor, inv=f"in_fz{serial}")
    obj["payments"]["data"][0]["payment"]["payment_intent"] = f"pi_fz{serial}"
    return event("invoice.paid", obj, evt=f"evt_fz{serial}")


def stripe_payment_intent(serial: int, amount_minor: int = 5_000) -> dict[str, Any]:
    intent = {"id": f"pi_fzi{serial}", "object": "payment_intent", "amount": amount_minor,
              "amount_received": amount_minor, "currency": "usd", "customer": "cus_1",
              "created": 1_795_810_008, "status": "succeeded"}
    return event("payment_intent.succeeded", intent, evt=f"evt_fzi{serial}")


Bases = dict[str, Callable[[int], dict[str, Any]]]  # kind -> a valid payload with ids `serial`
CANONICAL: Bases = {
    "invoice": canonical_invoice, "payment": canonical_payment, "contract": canonical_contract}
STRIPE: Bases = {
    "invoice_paid": stripe_invoice_paid, "payment_intent": stripe_payment_intent}


# -- mutation primitives -----------------------------------------------------------------------

def leaves(doc: Any, path: LeafPath = ()) -> list[LeafPath]:
    """Paths to every scalar (strings, numbers, booleans, nulls) in a JSON document."""
    if isinstance(doc, dict):
        return [p for key, value in doc.items() for p in leaves(value, (*path, key))]
    if isinstance(doc, list):
        return [p for i, value in enumerate(doc) for p in leaves(value, (*path, i))]
    return [path]


def string_leaves(doc: Any) -> list[LeafPath]:
    return [p for p in leaves(doc) if isinstance(read(doc, p), str)]


def read(doc: Any, path: LeafPath) -> Any:
    for key in path:
        doc = doc[key]
    return doc


def replaced(doc: Any, path: LeafPath, value: Any) -> Any:
    out = copy.deepcopy(doc)
    target = out
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return out


def serialise(doc: Any, raw: str | None = None, bad_bytes: bytes = b"") -> bytes:
    """JSON bytes of `doc`, with the `RAW` leaf spelt as the raw token `raw` and the
    `BAD_UTF8` leaf as a string holding `bad_bytes`."""
    text = json.dumps(doc).encode()
    if raw is not None:
        text = text.replace(json.dumps(RAW).encode(), raw.encode(), 1)
    return text.replace(BAD_UTF8.encode(), b"ok" + bad_bytes + b"ok", 1)


def nested(depth: int, inner: bytes = b"0", opener: bytes = b"[", closer: bytes = b"]") -> bytes:
    return opener * depth + inner + closer * depth


def padded(body: bytes, size: int) -> bytes:
    """`body` followed by JSON whitespace up to `size` bytes (still the same JSON)."""
    return body + b" " * max(0, size - len(body))


@dataclass(frozen=True, slots=True)
class Mutant:
    """One way to break a payload: leaf mutations (pick, value) and one body operation,
    applied to every base payload of a route (so one drawn example is several requests)."""

    leaf_changes: tuple[tuple[int, Any], ...]
    body_op: str | None
    op_arg: int

    def describe(self) -> str:
        changes = ", ".join(f"#{pick}={value!r:.40}" for pick, value in self.leaf_changes)
        return f"[{changes}] {self.body_op or ''}".rstrip()

    def document(self, doc: Any) -> Any:
        for pick, value in self.leaf_changes:
            paths = leaves(doc)
            doc = replaced(doc, paths[pick % len(paths)], value)
        return doc

    def bodies(self, bases: Bases, serials: Callable[[], int]) -> list[tuple[str, bytes]]:
        """(kind, body) for each base payload, each with ids of its own."""
        raw = RAW_NUMBERS[self.op_arg % len(RAW_NUMBERS)]
        bad = INVALID_UTF8[self.op_arg % len(INVALID_UTF8)]
        out: list[tuple[str, bytes]] = []
        for kind, build in bases.items():
            serial = serials()
            data = serialise(self.document(build(serial)), raw, bad)
            out.append((kind, apply_body_op(self.body_op, data, self.op_arg, bases, serial)))
        return out


def apply_body_op(op: str | None, data: bytes, arg: int, bases: Bases, serial: int) -> bytes:
    if op == "truncate":
        return data[:arg % max(len(data), 1)]
    if op == "bad_utf8":
        at = arg % max(len(data), 1)
        return data[:at] + INVALID_UTF8[arg % len(INVALID_UTF8)] + data[at:]
    if op == "bom":
        return b"\xef\xbb\xbf" + data
    if op == "trailing":
        return data + b"}{"
    if op == "duplicate_key":
        return b'{"type": "invoice.issued", ' + data[1:] if data.startswith(b"{") else data
    if op == "nest":
        return nested(1 + arg % 40_000, data)
    if op == "batch":
        good = json.dumps(next(iter(bases.values()))(serial + 500_000)).encode()
        return b"[" + good + b"," + data + b"]"
    if op == "pad_over":
        return padded(data, BODY_MAX_BYTES + 1 + arg % 4096)
    if op == "pad_to_limit":
        return padded(data, BODY_MAX_BYTES)
    return data


# -- hypothesis strategies ---------------------------------------------------------------------

hostile_text = st.text(st.characters(codec="utf-8", categories=["Cc", "Cf", "Zl", "Zp", "Co"])
                       | st.sampled_from(CONTROL_CHARS) | st.characters(), max_size=24)
long_text = st.sampled_from((64, 255, 256, 1_000, 4_097, 20_000)).map(lambda n: "x" * n)
wrong_types = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70),
                        st.floats(allow_nan=False, allow_infinity=False),
                        st.just([]), st.just({}), st.lists(st.integers(), max_size=3),
                        st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))
leaf_values = st.one_of(
    st.sampled_from(HUGE_AMOUNTS + SIGNED), st.just(RAW), st.sampled_from(BAD_DATES), wrong_types,
    hostile_text, long_text, st.just(BAD_UTF8),
    st.sampled_from(CONTROL_CHARS).map(lambda c: f"id{c}x"))


def mutants() -> st.SearchStrategy[Mutant]:
    """About one in ten untouched (valid traffic between the broken)."""
    changes = st.lists(st.tuples(st.integers(0, 10**6), leaf_values), max_size=3)
    body_ops = st.one_of(st.none(), st.none(), st.none(), st.sampled_from(BODY_OPS))
    return st.builds(Mutant, changes.map(tuple), body_ops, st.integers(0, 10**6))


def control_sweep(bases: Bases, serials: Callable[[], int]) -> list[tuple[str, bytes]]:
    """Every string field of every base payload, once with each control character."""
    out: list[tuple[str, bytes]] = []
    for kind, build in bases.items():
        template = build(0)
        for path in string_leaves(template):
            for char in CONTROL_CHARS:
                doc = build(serials())
                label = f"{kind}:{'.'.join(map(str, path))}:{char.encode('unicode_escape')!r}"
                out.append((label, serialise(replaced(doc, path, read(doc, path) + char))))
    return out
