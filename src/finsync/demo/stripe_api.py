"""The company's own calls to Stripe in the real-stack demo: the demo plays the business
that bills its customer through Stripe (finsync itself only reads Stripe, through its
connector).

Rules:
- Form-encoded requests with the secret key as a Bearer token, as Stripe's API takes them;
  every POST carries an `Idempotency-Key` made from the step it belongs to, so that a POST
  sent again (a retried demo step) does not bill twice.
- A refusal is a `StripeCallError` with the HTTP status and Stripe's own message; a network
  failure too (status 0). Nothing is retried here: a demo step either ran or says why not.
- `available(path)` asks a list endpoint for one item: how the demo learns what this Stripe
  (Stripe itself, or an emulator such as localstripe) can do, without changing anything.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from finsync.domain.errors import FinsyncError

Params = Mapping[str, object] | Sequence[tuple[str, object]]
MESSAGE_MAX = 300  # characters of Stripe's answer kept in an error


class StripeCallError(FinsyncError):
    code = "stripe_refused"

    def __init__(self, method: str, path: str, status: int, message: str) -> None:
        super().__init__(f"{method} {path} answered {status or 'nothing'}: {message}")
        self.status = status


@dataclass(frozen=True, slots=True)
class StripeApi:
    base_url: str
    api_key: str = field(repr=False)  # a secret: never in a repr or a report
    timeout_s: float = 30.0

    def get(self, path: str, params: Params = ()) -> dict[str, Any]:
        query = urllib.parse.urlencode(_pairs(params))
        return self._call("GET", f"{path}?{query}" if query else path, None, {})

    def post(self, path: str, params: Params, idempotency_key: str) -> dict[str, Any]:
        body = urllib.parse.urlencode(_pairs(params)).encode()
        return self._call("POST", path, body, {"Idempotency-Key": idempotency_key})

    def available(self, path: str) -> str | None:
        """None when this Stripe answers `GET path?limit=1`, else why not."""
        try:
            self.get(path, {"limit": 1})
        except StripeCallError as exc:
            return str(exc)
        return None

    def _call(self, method: str, target: str, body: bytes | None,
              headers: Mapping[str, str]) -> dict[str, Any]:
        request = urllib.request.Request(
            self.base_url.rstrip("/") + target, data=body, method=method,
            headers={"Authorization": f"Bearer {self.api_key}", **headers})
        path = target.split("?", 1)[0]
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                text = response.read()
        except urllib.error.HTTPError as exc:
            raise StripeCallError(method, path, exc.code, _message(exc.read())) from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            raise StripeCallError(method, path, 0, str(exc)[:MESSAGE_MAX]) from None
        answer = json.loads(text) if text.strip() else {}
        if not isinstance(answer, dict):
            raise StripeCallError(method, path, 200, "the answer is not a JSON object")
        return answer


def _pairs(params: Params) -> list[tuple[str, str]]:
    items = params.items() if isinstance(params, Mapping) else params
    return [(key, _text(value)) for key, value in items if value is not None]


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _message(body: bytes) -> str:
    try:
        error = json.loads(body).get("error", {})
        return str(error.get("message") or error)[:MESSAGE_MAX]
    except (ValueError, AttributeError):
        return body.decode("utf-8", "replace").strip()[:MESSAGE_MAX]
