"""Stripe's REST API as a billing source (`BillingSourcePort`), over the standard library.

Rules:
- Bearer secret key; base URL, API version and timeout are configuration. A client for a
  Connect account sends `Stripe-Account` with the platform's key: it reads that account's
  objects. The source only reads; the subscription platform (`orders`) writes, each POST or
  DELETE form-encoded with the `Idempotency-Key` its caller derives (`send`).
- Errors are translated here: 429, 5xx, timeouts and lost connections are `TransientError`
  (with `Retry-After` when Stripe sends one); any other 4xx is a `PermanentError` carrying
  Stripe's own message and error code (`[resource_missing]`). A write also holds 401, 403
  and 409 as transient: a key or permission the operator fixes, a request with the same
  idempotency key still in flight. A response that is not a JSON object is a
  `PermanentError`.
- Lists are read to the end with `starting_after`, bounded by `pages_max`. A list the poller
  fetches beside an event (`LISTS`: the invoice payments of a PaymentIntent or of an
  invoice, the credit notes of what a PaymentIntent paid) comes back whole, as a list
  object.
- `events_after` reads `/v1/events` from a cursor `"<created>:<ids seen at that second>"`
  and returns them oldest first, whatever order the server lists them in (Stripe lists
  newest first; localstripe oldest first): events within one second keep the server's
  relative order, reversed when the listing is newest first.
- Every request goes to the call log (`connectors.calls`): GET, the path and query (ids and
  cursors only), the HTTP status, Stripe's error type and code, the duration and a redacted
  excerpt of the answer (objects hold names, emails and addresses: only their shape and
  ids are kept). Headers are not recorded: the secret key never is; nor is a write's body
  (it holds names and addresses), only its size.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from finsync.connectors.calls import NO_RECORDER, CallRecorder, Channel, Exchange, recorded
from finsync.connectors.ports import SourceEvent, SourcePage
from finsync.domain.errors import ExceptionClass, PermanentError, TransientError

Params = Sequence[tuple[str, str]]

# object type -> (path of the object, list of its sub-list to complete, expansions)
_OBJECTS: dict[str, tuple[str, str | None, tuple[str, ...]]] = {
    "invoice": ("/v1/invoices/{id}", "/v1/invoices/{id}/lines", ()),
    "credit_note": ("/v1/credit_notes/{id}", "/v1/credit_notes/{id}/lines", ()),
    "subscription": ("/v1/subscriptions/{id}", "/v1/subscription_items?subscription={id}", ()),
    "refund": ("/v1/refunds/{id}", None, ("charge",)),
    "customer": ("/v1/customers/{id}", None, ()),
    "payment_intent": ("/v1/payment_intents/{id}", None, ()),
    "charge": ("/v1/charges/{id}", None, ()),
    "dispute": ("/v1/disputes/{id}", None, ()),  # a thin dispute event's object
    "tax_rate": ("/v1/tax_rates/{id}", None, ()),  # a rate an invoice line names by id
}
_SUBLIST_KEY = {"invoice": "lines", "credit_note": "lines", "subscription": "items"}
FETCHABLE = frozenset(_OBJECTS)  # the object types `fetch` reads

# object type -> (list path, query; "{id}" is the id fetched): lists fetched beside an event.
INVOICE_PAYMENTS_OF_INTENT = "invoice_payments_of_payment_intent"
INVOICE_PAYMENTS_OF_INVOICE = "invoice_payments_of_invoice"
CREDIT_NOTES_OF_INTENT = "credit_notes_of_payment_intent"
LISTS: dict[str, tuple[str, tuple[tuple[str, str], ...]]] = {
    # with each invoice expanded: its customer and subscription thread the payment
    INVOICE_PAYMENTS_OF_INTENT: ("/v1/invoice_payments", (
        ("payment[type]", "payment_intent"), ("payment[payment_intent]", "{id}"),
        ("expand[]", "data.invoice"))),
    INVOICE_PAYMENTS_OF_INVOICE: ("/v1/invoice_payments", (("invoice", "{id}"),)),
}


class StripeRefusedError(PermanentError):
    """Stripe refused the request itself (a 4xx about it): its HTTP status and Stripe's
    error code, for a caller that tells one refusal from another (a 404 from a 400)."""

    def __init__(self, message: str, *, status: int, stripe_code: str) -> None:
        super().__init__(message, exception_class=ExceptionClass.MASTER_DATA_MISMATCH)
        self.status, self.stripe_code = status, stripe_code
        self.code = stripe_code or "stripe_refused"


@dataclass(frozen=True, slots=True)
class ClientSettings:
    api_key: str = field(repr=False)  # a secret: never in a repr, a log line or a traceback
    base_url: str = "https://api.stripe.com"
    api_version: str | None = None
    timeout_s: float = 10.0
    pages_max: int = 100
    account: str | None = None  # a Connect account the platform's key acts for


class StripeClient:
    def __init__(self, system: str, settings: ClientSettings, *,
                 recorder: CallRecorder = NO_RECORDER) -> None:
        if not settings.api_key:
            raise ValueError("a Stripe client needs an API key")
        self.system, self._settings, self._recorder = system, settings, recorder

    # -- BillingSourcePort ------------------------------------------------------------------

    def fetch(self, object_type: str, external_id: str) -> Mapping[str, object]:
        """The current object, with its line or item list complete; or a whole list
        (`LISTS`, `CREDIT_NOTES_OF_INTENT`)."""
        if object_type in LISTS:
            path, query = LISTS[object_type]
            return _listing(path, self.list_all(path, [(k, v.format(id=external_id))
                                                       for k, v in query]))
        if object_type == CREDIT_NOTES_OF_INTENT:
            return self._credit_notes_of_intent(external_id)
        if object_type not in _OBJECTS:
            raise PermanentError(f"cannot fetch Stripe {object_type} objects",
                                 exception_class=ExceptionClass.MAPPING_ERROR)
        path, sublist, expand = _OBJECTS[object_type]
        quoted = urllib.parse.quote(external_id, safe="")
        obj = dict(self.get(path.format(id=quoted), [("expand[]", e) for e in expand]))
        if sublist is not None:
            key = _SUBLIST_KEY[object_type]
            listing = obj.get(key)
            if not isinstance(listing, Mapping) or listing.get("has_more"):
                items = self.list_all(sublist.format(id=quoted), [])
                obj[key] = {"object": "list", "data": items, "has_more": False}
        return obj

    def _credit_notes_of_intent(self, intent_id: str) -> Mapping[str, object]:
        """The credit notes of every invoice a PaymentIntent paid (a refund of it may be one
        of theirs)."""
        paid = self.list_all("/v1/invoice_payments", [
            ("payment[type]", "payment_intent"), ("payment[payment_intent]", intent_id)])
        invoices = sorted({str(p["invoice"]) for p in paid if isinstance(p.get("invoice"), str)})
        notes = [note for invoice in invoices
                 for note in self.list_all("/v1/credit_notes", [("invoice", invoice)])]
        return _listing("/v1/credit_notes", notes)

    def events_after(self, cursor: str | None, limit: int) -> SourcePage:
        created, seen = _parse_cursor(cursor)
        params = [("created[gte]", str(created))] if created is not None else []
        events = [e for e in _oldest_first(self.list_all("/v1/events", params))
                  if not (e["created"] == created and e["id"] in seen)]
        page = events[:limit]
        if not page:
            return SourcePage((), cursor, False)
        last = page[-1]["created"]
        ids = [e["id"] for e in page if e["created"] == last]
        kept = list(seen) if last == created else []
        return SourcePage(tuple(SourceEvent(e["id"], e["type"], e["created"], e) for e in page),
                          f"{last}:{','.join(kept + ids)}", len(events) > limit)

    # -- HTTP -------------------------------------------------------------------------------

    def list_all(self, path: str, params: Params) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        after: str | None = None
        for _ in range(self._settings.pages_max):
            page = self.get(path, [*params, ("limit", "100"),
                                   *((("starting_after", after),) if after else ())])
            data = page.get("data")
            if not isinstance(data, list):
                raise PermanentError(f"{path} did not answer a list",
                                     exception_class=ExceptionClass.MAPPING_ERROR)
            items += [d for d in data if isinstance(d, dict)]
            if not page.get("has_more") or not data:
                return items
            after = str(data[-1]["id"])
        raise PermanentError(f"{path} has more than {self._settings.pages_max} pages; raise "
                             "pages_max or narrow the window",
                             exception_class=ExceptionClass.TARGET_UNAVAILABLE)

    def get(self, path: str, params: Params) -> Mapping[str, Any]:
        sep = "&" if "?" in path else "?"
        query = f"{sep}{urllib.parse.urlencode(list(params))}" if params else ""
        with recorded(self._recorder, self.system, Channel.HTTP, "GET",
                      path + query) as exchange:
            body = self._call(path, path + query, exchange)
            answer = _json_object(path, body)
            exchange.response(answer, len(body))
            return answer

    def send(self, method: str, path: str, params: Params,
             idempotency_key: str) -> Mapping[str, Any]:
        """A write (POST or DELETE) of form-encoded `params` under `idempotency_key`: Stripe
        answers a repeat of the key within its retention (24 hours) with the first answer."""
        body = urllib.parse.urlencode(list(params)).encode()
        with recorded(self._recorder, self.system, Channel.HTTP, method, path) as exchange:
            exchange.request_bytes = len(body)
            answer_bytes = self._call(path, path, exchange, method=method, form=body,
                                     headers={"Idempotency-Key": idempotency_key})
            answer = _json_object(path, answer_bytes)
            exchange.response(answer, len(answer_bytes))
            return answer

    def _call(self, path: str, target: str, exchange: Exchange, *, method: str = "GET",
             form: bytes | None = None, headers: Mapping[str, str] | None = None) -> bytes:
        extra = dict(headers or {})
        if form is not None:
            extra["Content-Type"] = "application/x-www-form-urlencoded"
        request = urllib.request.Request(self._settings.base_url.rstrip("/") + target,
                                         data=form, headers={**self._headers(), **extra},
                                         method=method)
        try:
            with urllib.request.urlopen(request, timeout=self._settings.timeout_s) as response:
                body: bytes = response.read()
                exchange.status = str(response.status)
        except urllib.error.HTTPError as exc:
            answer = _read(exc)
            exchange.status, exchange.error = str(exc.code), _error_kind(answer)
            exchange.response(answer, len(answer))
            raise _http_error(path, exc, answer, write=method != "GET") from exc
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            exchange.status, exchange.error = "unreachable", exc.__class__.__name__
            raise TransientError(f"Stripe unreachable at {path}: {exc}") from exc
        return body

    def _headers(self) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self._settings.api_key}",
                   "Accept": "application/json", "User-Agent": "finsync-stripe/0.1"}
        if self._settings.api_version:
            headers["Stripe-Version"] = self._settings.api_version
        if self._settings.account:
            headers["Stripe-Account"] = self._settings.account
        return headers


def _listing(path: str, items: list[dict[str, Any]]) -> Mapping[str, object]:
    return {"object": "list", "data": items, "has_more": False, "url": path}


def _json_object(path: str, body: bytes) -> Mapping[str, Any]:
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise PermanentError(f"Stripe answered {path} with non-JSON",
                             exception_class=ExceptionClass.MAPPING_ERROR) from exc
    if not isinstance(data, dict):
        raise PermanentError(f"Stripe answered {path} with a non-object",
                             exception_class=ExceptionClass.MAPPING_ERROR)
    return data


def _read(exc: urllib.error.HTTPError) -> bytes:
    try:
        return exc.read()
    except OSError:
        return b""


def _error_kind(answer: bytes) -> str | None:
    """Stripe's error type and code (never its message, which may quote what was sent)."""
    try:
        detail = json.loads(answer).get("error", {})
        kind = ":".join(str(detail[k]) for k in ("type", "code") if detail.get(k))
    except (ValueError, AttributeError, TypeError):
        return None
    return kind[:64] or None


# A write refused with these is the connection's or a concurrent copy's, not the request's.
_WRITE_TRANSIENT = frozenset({401, 403, 409})


def _http_error(path: str, exc: urllib.error.HTTPError, answer: bytes, *,
                write: bool = False) -> TransientError | PermanentError:
    try:
        detail = json.loads(answer).get("error", {})
        message = str(detail.get("message") or exc.reason)
        code = str(detail.get("code") or detail.get("type") or "")[:64]
    except (ValueError, AttributeError):
        message, code = str(exc.reason), ""
    text = f"Stripe {exc.code} on {path}: {message}"
    if write and code:
        text = f"Stripe {exc.code} on {path} [{code}]: {message}"
    if exc.code == 429 or exc.code >= 500 or (write and exc.code in _WRITE_TRANSIENT):
        return TransientError(text, retry_after_s=_retry_after(exc.headers.get("Retry-After")))
    return StripeRefusedError(text, status=exc.code, stripe_code=code)


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def _parse_cursor(cursor: str | None) -> tuple[int | None, frozenset[str]]:
    if not cursor:
        return None, frozenset()
    created, _, ids = cursor.partition(":")
    if not created.isdigit():
        raise ValueError(f"not a Stripe events cursor: {cursor!r}")
    return int(created), frozenset(i for i in ids.split(",") if i)


def _oldest_first(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    valid = [e for e in events if isinstance(e.get("created"), int)
             and isinstance(e.get("id"), str) and isinstance(e.get("type"), str)]
    if len(valid) > 1 and valid[0]["created"] > valid[-1]["created"]:
        valid.reverse()
    return sorted(valid, key=lambda e: int(e["created"]))  # stable: keeps ties in order
