"""Requests schemathesis generates from the app's own OpenAPI document.

The intake routes read their body as raw bytes (they must: a webhook is verified on the
exact bytes), so FastAPI's document gives no schema for their body. Where it gives none
(no request body, or a body of any content, `{}`), the schema below is put in before
schemathesis reads the document: the canonical
envelope for source intake, a Stripe event for the webhook. Both positive (schema-valid)
and negative (schema-violating) cases are generated; hypothesis is seeded (`derandomize`),
so every run sends the same requests.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit

import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from hypothesis.strategies import SearchStrategy
from schemathesis import Case, GenerationMode

from finsync.domain.events import EventType
from tests.fuzz.fuzzkit import INTAKE, WEBHOOK

_TEXT = {"type": "string", "minLength": 1, "maxLength": 300}
_NULLABLE_TEXT = {"type": ["string", "null"], "maxLength": 300}
ENVELOPE = {
    "type": "object",
    "required": ["type", "schema_version", "source", "source_event_id", "occurred_at",
                 "correlation_id", "aggregate", "payload"],
    "properties": {
        "type": {"enum": [t.value for t in EventType]},
        "schema_version": {"type": "integer"},
        "source": _TEXT, "source_event_id": _TEXT, "correlation_id": _TEXT,
        "causation_id": _NULLABLE_TEXT, "business_key": _NULLABLE_TEXT,
        "occurred_at": {"type": "string", "format": "date-time"},
        "aggregate": {"type": "object", "required": ["type", "id"], "properties": {
            "type": _TEXT, "id": _TEXT, "version": {"type": ["integer", "null"]}}},
        "payload": {"type": "object", "properties": {"payment": {"type": "object", "properties": {
            "id": _TEXT, "amount": {"type": "string"}, "currency": {"type": "string"}}}}},
    },
}
STRIPE_EVENT = {
    "type": "object",
    "required": ["id", "object", "type", "created", "data"],
    "properties": {
        "id": _TEXT, "object": {"const": "event"}, "api_version": _TEXT,
        "type": {"enum": ["invoice.paid", "invoice.finalized", "payment_intent.succeeded",
                          "charge.refunded", "credit_note.created", "customer.updated"]},
        "created": {"type": "integer"},
        "data": {"type": "object", "required": ["object"], "properties": {
            "object": {"type": "object", "properties": {
                "id": _TEXT, "object": _TEXT, "currency": {"type": "string"},
                "amount": {"type": "integer"}, "total": {"type": "integer"},
                "customer": _TEXT}}}},
    },
}
BODIES = {INTAKE: ENVELOPE, WEBHOOK: STRIPE_EVENT}
Request = tuple[str, str, bytes, dict[str, str]]  # (label, path and query, body, headers)


def documented(app: FastAPI) -> dict[str, Any]:
    """The app's OpenAPI document, with a request body for each intake route lacking one."""
    document = copy.deepcopy(app.openapi())
    for path, schema in BODIES.items():
        operation = document["paths"][path]["post"]
        declared = operation.get("requestBody", {}).get("content", {})
        if not any(media.get("schema") for media in declared.values()):
            operation["requestBody"] = {
                "required": True, "content": {"application/json": {"schema": schema}}}
    return document


def generated(app: FastAPI, path: str, examples: int,
              path_parameters: Mapping[str, str] | None = None,
              method: str = "POST") -> list[Request]:
    """`examples` positive and `examples` negative requests for one route (no negative
    ones for a route that has nothing to break)."""
    operation = schemathesis.openapi.from_dict(documented(app))[path][method]
    requests: list[Request] = []
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
        strategy = operation.as_strategy(generation_mode=mode,
                                         path_parameters=dict(path_parameters or {}))
        try:
            _collect(strategy, examples, requests, f"schemathesis {mode.value}")
        except Unsatisfiable:  # no way to break it: a route without parameters or body
            continue
    return requests


def _collect(strategy: SearchStrategy[Case[Any]], examples: int, into: list[Request],
             label: str) -> None:
    @settings(max_examples=examples, derandomize=True, deadline=None, database=None,
              phases=[Phase.generate],
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                     HealthCheck.filter_too_much])
    @given(strategy)
    def collect(case: Case[Any]) -> None:
        into.append(_request(case, label))

    collect()


def _request(case: Case[Any], label: str) -> Request:
    kwargs = case.as_transport_kwargs(base_url="http://testserver")
    url = urlsplit(kwargs["url"])
    params = kwargs.get("params") or {}
    target = url.path + (f"?{urlencode(params, doseq=True)}" if params else "")
    # The campaign's client sends a valid token: the scope matrix tests credentials.
    headers = {str(k): str(v) for k, v in (kwargs.get("headers") or {}).items()
               if str(k).lower() != "authorization"}
    return label, target, _body(kwargs), headers


def _body(kwargs: Mapping[str, Any]) -> bytes:
    if "json" in kwargs:
        return json.dumps(kwargs["json"]).encode()
    data = kwargs.get("data")
    if data is None:
        return b""
    if isinstance(data, bytes):
        return data
    if isinstance(data, str):
        return data.encode("utf-8", "surrogatepass")
    return json.dumps(data, default=str).encode()


def reads(app: FastAPI) -> list[str]:
    """Every read (GET) route of the app's OpenAPI document, but the document itself."""
    paths = app.openapi()["paths"]
    return sorted(path for path, operations in paths.items() if "get" in operations)
