"""HubSpot's CRM v3 API through the official SDK (`hubspot-api-client`), answers kept raw.

Rules:
- Objects are read with the SDK's `basic_api.get_by_id` and `batch_api.read` and kept as
  the JSON HubSpot sent (`_preload_content=False`): a snapshot stores the vendor's own
  words, not the SDK's models. An answer over `answer_max_bytes` is refused before it is
  parsed, and one that is not a JSON object with an id is a `PermanentError`.
- The SDK does not retry (`Retry(0)`): the fetcher runs again at the next pipeline run.
  Each request has `timeout_s`.
- Errors are translated here: unreachable, 429, 5xx and 401/403 (a token being rotated, a
  scope being granted: the connection's, not the object's) are `TransientError`; 404 is
  `ObjectGoneError` (a `PermanentError`: the object is gone); any other 4xx is a
  `PermanentError` too.
- Every request is recorded in the call log (method, path, status; no header, so never the
  token).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import urllib3
from hubspot import HubSpot  # type: ignore[import-untyped]
from hubspot.crm.companies.exceptions import (  # type: ignore[import-untyped]
    ApiException as CompanyApiError,
)
from hubspot.crm.deals.exceptions import (  # type: ignore[import-untyped]
    ApiException as DealApiError,
)
from hubspot.crm.line_items import (  # type: ignore[import-untyped]
    BatchReadInputSimplePublicObjectId,
)
from hubspot.crm.line_items.exceptions import (  # type: ignore[import-untyped]
    ApiException as LineItemApiError,
)
from hubspot.crm.quotes.exceptions import (  # type: ignore[import-untyped]
    ApiException as QuoteApiError,
)
from urllib3.util.retry import Retry

from finsync.connectors.calls import NO_RECORDER, CallRecorder, Channel, Exchange, recorded
from finsync.domain.errors import ExceptionClass, PermanentError, TransientError

_API_ERRORS = (DealApiError, CompanyApiError, LineItemApiError, QuoteApiError)
BATCH_MAX = 100  # HubSpot's batch read takes 100 inputs

DEAL_PROPERTIES = ("dealname", "dealstage", "pipeline", "closedate", "amount",
                   "deal_currency_code", "hs_lastmodifieddate", "hs_object_id")
LINE_ITEM_PROPERTIES = ("name", "hs_sku", "hs_product_id", "quantity", "price", "discount",
                        "hs_discount_percentage", "amount", "recurringbillingfrequency",
                        "hs_recurring_billing_period", "hs_recurring_billing_start_date",
                        "hs_line_item_currency_code", "hs_lastmodifieddate")
COMPANY_PROPERTIES = ("name", "address", "address2", "city", "zip", "state", "country",
                      "domain", "hs_lastmodifieddate")
QUOTE_PROPERTIES = ("hs_title", "hs_status", "hs_expiration_date", "hs_quote_amount",
                    "hs_currency", "hs_lastmodifieddate")

Obj = Mapping[str, Any]


class ObjectGoneError(PermanentError):
    """HubSpot has no such object (404): deleted, or merged into another."""


@dataclass(frozen=True, slots=True)
class ClientSettings:
    access_token: str
    base_url: str = "https://api.hubapi.com"
    timeout_s: float = 10.0
    answer_max_bytes: int = 4 << 20
    deal_properties: tuple[str, ...] = ()  # configured extras (term dates, change kind)
    company_properties: tuple[str, ...] = ()  # configured extras (the VAT id)


class HubSpotClient:
    def __init__(self, system: str, settings: ClientSettings,
                 recorder: CallRecorder = NO_RECORDER) -> None:
        self.system = system
        self._settings = settings
        self._recorder = recorder
        self._sdk = HubSpot(access_token=settings.access_token,
                            host=settings.base_url.rstrip("/"), retry=Retry(0))

    def deal(self, deal_id: str) -> Obj:
        """The deal with its associated line items, companies and quotes (ids)."""
        props = [*DEAL_PROPERTIES, *self._settings.deal_properties]
        return self._call("GET", f"/crm/v3/objects/deals/{deal_id}",
                          lambda: self._sdk.crm.deals.basic_api.get_by_id(
                              deal_id, properties=props,
                              associations=["line_items", "companies", "quotes"],
                              _preload_content=False, _request_timeout=self._timeout()))

    def company(self, company_id: str) -> Obj:
        props = [*COMPANY_PROPERTIES, *self._settings.company_properties]
        return self._call("GET", f"/crm/v3/objects/companies/{company_id}",
                          lambda: self._sdk.crm.companies.basic_api.get_by_id(
                              company_id, properties=props, _preload_content=False,
                              _request_timeout=self._timeout()))

    def quote(self, quote_id: str) -> Obj:
        return self._call("GET", f"/crm/v3/objects/quotes/{quote_id}",
                          lambda: self._sdk.crm.quotes.basic_api.get_by_id(
                              quote_id, properties=list(QUOTE_PROPERTIES),
                              associations=["deals"], _preload_content=False,
                              _request_timeout=self._timeout()))

    def line_item(self, line_item_id: str) -> Obj:
        """One line item with its deals (to find the deal a line item webhook is about)."""
        return self._call("GET", f"/crm/v3/objects/line_items/{line_item_id}",
                          lambda: self._sdk.crm.line_items.basic_api.get_by_id(
                              line_item_id, properties=["hs_lastmodifieddate"],
                              associations=["deals"], _preload_content=False,
                              _request_timeout=self._timeout()))

    def line_items(self, ids: Sequence[str]) -> list[Obj]:
        """The line items `ids`, read in batches, in the order asked."""
        found: dict[str, Obj] = {}
        for at in range(0, len(ids), BATCH_MAX):
            chunk = list(ids[at:at + BATCH_MAX])
            request = BatchReadInputSimplePublicObjectId(
                inputs=[{"id": i} for i in chunk], properties=list(LINE_ITEM_PROPERTIES),
                properties_with_history=[])
            answer = self._call("POST", "/crm/v3/objects/line_items/batch/read",
                                partial(self._batch_read, request), keyed=False)
            for item in answer.get("results") or []:
                if isinstance(item, dict) and isinstance(item.get("id"), str):
                    found[item["id"]] = item
        missing = [i for i in ids if i not in found]
        if missing:
            raise PermanentError(f"HubSpot did not return line items {missing[:10]}",
                                 exception_class=ExceptionClass.MAPPING_ERROR)
        return [found[i] for i in ids]

    def _batch_read(self, request: Any) -> Any:
        return self._sdk.crm.line_items.batch_api.read(request, _preload_content=False,
                                                       _request_timeout=self._timeout())

    def _timeout(self) -> float:
        return self._settings.timeout_s

    def _call(self, method: str, path: str, send: Any, keyed: bool = True) -> Obj:
        with recorded(self._recorder, self.system, Channel.HTTP, method, path) as exchange:
            answer = self._answer(path, send, exchange)
            exchange.response(answer, None)
        shaped = isinstance(answer.get("id"), str) and isinstance(answer.get("properties"),
                                                                   dict)
        if keyed and not shaped:
            raise PermanentError(f"HubSpot answered {path} without an object id and "
                                 "properties", exception_class=ExceptionClass.MAPPING_ERROR)
        return answer

    def _answer(self, path: str, send: Any, exchange: Exchange) -> Obj:
        try:
            response = send()
            exchange.status = str(response.status)
            raw = response.read(self._settings.answer_max_bytes + 1)
            response.release_conn()
        except _API_ERRORS as exc:
            exchange.status = str(exc.status)
            exchange.error = str(exc.reason)[:100]
            raise _http_error(path, int(exc.status or 0)) from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            exchange.status = "unreachable"
            exchange.error = type(exc).__name__
            raise TransientError(f"HubSpot unreachable at {path}: "
                                 f"{type(exc).__name__}") from exc
        if len(raw) > self._settings.answer_max_bytes:
            raise PermanentError(f"HubSpot's answer to {path} is over "
                                 f"{self._settings.answer_max_bytes} bytes",
                                 exception_class=ExceptionClass.MAPPING_ERROR)
        try:
            answer = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise TransientError(f"HubSpot answered {path} with something not JSON") from exc
        if not isinstance(answer, dict):
            raise PermanentError(f"HubSpot answered {path} with a JSON {type(answer).__name__}",
                                 exception_class=ExceptionClass.MAPPING_ERROR)
        return answer


def _http_error(path: str, status: int) -> TransientError | PermanentError:
    if status == 404:
        return ObjectGoneError(f"HubSpot has no {path} (404)",
                              exception_class=ExceptionClass.MAPPING_ERROR)
    if status in (0, 401, 403, 429) or status >= 500:
        return TransientError(f"HubSpot answered {path} with {status}")
    return PermanentError(f"HubSpot refused {path} ({status})",
                          exception_class=ExceptionClass.MAPPING_ERROR)
