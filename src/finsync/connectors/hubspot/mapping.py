"""HubSpot snapshots -> canonical events, purely.

Rules:
- A webhook body (an array of events) maps to nothing: it names objects the fetcher reads;
  its copy is kept as received. A snapshot (`snapshot`) maps to one event.
- A deal is a commercial contract (`CommercialContractApproved`), id = the deal id. It maps
  only once approved: its `dealstage` is one of the configured approved stages. Its version
  is the snapshot's (the fetcher numbers approved states, `state`); version 1 is the new
  order, later ones are amendments unless the deal's `kind_property` says renewal or
  cancellation. `quote_id` (the change's id, correlation and billing idempotency key) is
  `hubspot-deal-<id>-v<version>`: unique per version even when one HubSpot quote stays on
  the deal across versions; the approved quote's id is kept in `refs`.
- The contract's lines are the deal's line items (id = line item id, product = its `hs_sku`,
  else `hubspot-product-<hs_product_id>`): `quantity`, list `price`, and the discount as
  `hs_discount_percentage` or a per-unit `discount`; the net unit price is rounded half up
  to the currency's minor units (HubSpot rounds its amounts the same way).
- The term: the deal's `term_start_property`/`term_end_property` (dates) when set, else from
  the earliest line's `hs_recurring_billing_start_date` for its `hs_recurring_billing_period`
  (ISO 8601 months, `P12M`). Lines co-terminate with the term; a line starts at its own
  billing start date (else the term's). The change takes effect on the deal's `closedate`,
  held within the term. Billing frequency: the lines' `recurringbillingfrequency`
  (monthly, quarterly, annually), one for the contract.
- sold-to = bill-to = the deal's primary company (the `deal_to_company` association, or
  the only company). A company is a customer account (`CustomerUpserted`), id = the company
  id, with name, street address, city, zip, country (ISO 3166-1 alpha-2), state (a
  subdivision code) and the VAT id from `vat_property`.
- Every failure is a `MappingError` naming the HubSpot object (`deal:<id>`, `company:<id>`);
  a snapshot of a failed read (`snapshot.error`) is refused as `fetch_failed` with its error.
"""

from __future__ import annotations

import calendar
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from finsync.connectors.hubspot import snapshot, webhook
from finsync.connectors.hubspot.snapshot import DEAL, Obj, Snapshot, props
from finsync.domain.aggregate import AggregateRef
from finsync.domain.catalog import BillingFrequency
from finsync.domain.commercial import (
    CommercialContract,
    CommercialKind,
    CommercialLine,
    ProrationTerms,
)
from finsync.domain.envelope import DraftEnvelope
from finsync.domain.errors import DomainError, MappingError
from finsync.domain.events import CommercialContractApproved, CustomerUpserted
from finsync.domain.limits import InputLimits
from finsync.domain.money import Money
from finsync.domain.party import CustomerAccount, PostalAddress
from finsync.domain.refs import ExternalRefs

REF = "hubspot"
QUOTE_REF = "hubspot_quote"
APPROVED_QUOTE = frozenset({"APPROVED", "APPROVAL_NOT_NEEDED"})
_FREQUENCIES = {"monthly": BillingFrequency.MONTHLY, "quarterly": BillingFrequency.QUARTERLY,
                "annually": BillingFrequency.ANNUAL}
_KINDS = {k.value: k for k in (CommercialKind.AMENDMENT, CommercialKind.RENEWAL,
                               CommercialKind.CANCELLATION)}
_MONTHS = re.compile(r"^P(?:(\d{1,2})Y)?(?:(\d{1,3})M)?$")
_REGION = re.compile(r"^[A-Z0-9]{1,3}$")
_COUNTRY = re.compile(r"^[A-Z]{2}$")
QUANTITY_MAX = 10**9
# What one deal may name: each is a call (line items by hundreds) and a part of its snapshot.
ASSOCIATED_MAX = {"line_items": 500, "companies": 20, "quotes": 50}
NUMBER_MAX = 10**15  # before any arithmetic; the source's amount_max applies after


@dataclass(frozen=True, slots=True)
class HubSpotSettings:
    legal_entity: str
    default_currency: str = "USD"
    approved_stages: frozenset[str] = frozenset({"closedwon"})
    vat_property: str = "vat_number"
    kind_property: str | None = None
    term_start_property: str = "contract_start_date"
    term_end_property: str = "contract_end_date"
    proration: ProrationTerms = ProrationTerms.INVOICE_NOW
    limits: InputLimits = field(default_factory=InputLimits)


def translate(settings: HubSpotSettings, source: str, body: bytes) -> list[DraftEnvelope]:
    """The draft envelopes of one raw body of a HubSpot source."""
    data = snapshot.loads(body, settings.limits)
    if isinstance(data, list):
        webhook.events(body, settings.limits)  # checked; its objects are fetched
        return []
    if not snapshot.is_snapshot(data):
        raise MappingError("a HubSpot source takes webhook arrays and finsync's snapshots",
                           code="invalid_snapshot")
    assert isinstance(data, dict)  # is_snapshot
    snap = snapshot.parse(data)
    try:
        return [_draft(settings, source, snap)]
    except MappingError as exc:
        raise exc.about(f"{snap.kind}:{snap.object_id}") from exc.__cause__
    except DomainError as exc:  # a broken domain rule in the payload is its mapping error
        raise MappingError(str(exc), code=exc.code,
                           subject=f"{snap.kind}:{snap.object_id}") from exc


def _draft(settings: HubSpotSettings, source: str, snap: Snapshot) -> DraftEnvelope:
    if snap.error is not None:
        raise MappingError(f"{snap.kind} {snap.object_id} could not be read from HubSpot: "
                           f"{snap.error}", code="fetch_failed")
    if snap.version is None:
        fingerprint(settings, snap)  # the fetcher could not map it: raises why
        raise MappingError(f"{snap.kind} {snap.object_id} was fetched in a state finsync "
                           "could not number", code="invalid_snapshot")
    occurred = modified_at(snap.main) or snap.fetched_at
    if snap.kind == DEAL:
        contract = commercial_contract(settings, snap, snap.version)
        return DraftEnvelope(CommercialContractApproved(contract), source,
                             f"deal:{contract.id}:v{contract.version}", occurred,
                             contract.quote_id,
                             aggregate=AggregateRef("commercial_contract", contract.id,
                                                    contract.version))
    customer = customer_account(settings, snap.main, snap.version)
    return DraftEnvelope(CustomerUpserted(customer), source,
                         f"company:{customer.id}:v{customer.version}", occurred,
                         f"hubspot-company-{customer.id}",
                         aggregate=AggregateRef("customer_account", customer.id,
                                                customer.version))


def approved(settings: HubSpotSettings, deal: Obj) -> bool:
    return _text(props(deal), "dealstage") in settings.approved_stages


def fingerprint(settings: HubSpotSettings, snap: Snapshot) -> str:
    """The commercial content of a state, hashed: what the version numbering compares (the
    version-derived fields left out). Raises `MappingError` for a state that cannot map."""
    try:
        if snap.kind == DEAL:
            contract = commercial_contract(settings, snap, 1)
            content: Any = replace(contract, quote_id="", refs=ExternalRefs())
        else:
            content = customer_account(settings, snap.main, 1)
    except MappingError:
        raise
    except DomainError as exc:
        raise MappingError(str(exc), code=exc.code) from exc
    text = json.dumps(_plain(content), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _plain(value: Any) -> Any:
    slots = getattr(type(value), "__slots__", None)
    if slots and not isinstance(value, ExternalRefs):
        return {name: _plain(getattr(value, name)) for name in slots}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


def check_associations(deal: Obj) -> None:
    """Refuse a deal with more associated objects of a kind than `ASSOCIATED_MAX` allows
    (the fetcher reads none of them then)."""
    for kind, most in ASSOCIATED_MAX.items():
        count = len(snapshot.associated(deal, kind))
        if count > most:
            raise MappingError(f"deal {deal['id']} has {count} {kind}, over the limit of "
                               f"{most}", code="too_many_associations")


def commercial_contract(settings: HubSpotSettings, snap: Snapshot,
                        version: int) -> CommercialContract:
    deal = snap.main
    fields = props(deal)
    check_associations(deal)
    if not approved(settings, deal):
        raise MappingError(f"deal {snap.object_id} is in stage "
                           f"{str(fields.get('dealstage'))[:64]!r}, not an approved one",
                           code="deal_not_approved")
    currency = (_text(fields, "deal_currency_code") or settings.default_currency).upper()
    start, end = _term(settings, fields, snap.line_items)
    lines = tuple(_line(item, currency, start, end) for item in snap.line_items)
    quote = _approved_quote(snap.quotes)
    refs = {REF: snap.object_id} | ({QUOTE_REF: quote} if quote else {})
    customer = primary_company(deal, snap.companies)
    effective = min(max(_date(fields.get("closedate"), "closedate") or start, start), end)
    return CommercialContract(
        id=snap.object_id, version=version, kind=_kind(settings, fields, version),
        quote_id=f"hubspot-deal-{snap.object_id}-v{version}", sold_to_id=customer,
        bill_to_id=customer, legal_entity=settings.legal_entity, currency=currency,
        start_date=start, end_date=end, effective_date=effective,
        billing_frequency=_frequency(snap.line_items), lines=lines,
        proration=settings.proration, refs=ExternalRefs.of(refs))


def _kind(settings: HubSpotSettings, fields: Mapping[str, Any], version: int) -> CommercialKind:
    if version == 1:
        return CommercialKind.NEW
    said = _text(fields, settings.kind_property) if settings.kind_property else ""
    if said and said.lower() not in _KINDS:
        raise MappingError(f"{settings.kind_property} = {said[:32]!r} is not one of "
                           f"{', '.join(_KINDS)}", code="invalid_kind")
    return _KINDS.get(said.lower(), CommercialKind.AMENDMENT)


def _term(settings: HubSpotSettings, fields: Mapping[str, Any],
          items: Sequence[Obj]) -> tuple[date, date]:
    start = _date(fields.get(settings.term_start_property), settings.term_start_property)
    end = _date(fields.get(settings.term_end_property), settings.term_end_property)
    if start is not None and end is not None:
        return start, end
    dated = [(_date(props(i).get("hs_recurring_billing_start_date"),
                    "hs_recurring_billing_start_date"), str(i["id"]), i) for i in items]
    starts = sorted((day, ident, item) for day, ident, item in dated if day is not None)
    if not starts:
        raise MappingError("the deal names no term: set its term dates or the line items' "
                           "billing start date and term", code="term_missing")
    first_start, _, first = starts[0]
    months = _months(props(first).get("hs_recurring_billing_period"))
    if months is None:
        raise MappingError(f"line item {first['id']} has no hs_recurring_billing_period",
                           code="term_missing")
    return start or first_start, end or _add_months(first_start, months)


def _line(item: Obj, currency: str, start: date, end: date) -> CommercialLine:
    fields = props(item)
    line_id = str(item["id"])
    own_currency = fields.get("hs_line_item_currency_code")
    if own_currency and str(own_currency).upper() != currency:
        raise MappingError(f"line item {line_id} is in {str(own_currency)[:8]}, the deal in "
                           f"{currency}", code="currency_mismatch")
    price = _decimal(fields.get("price"), f"line item {line_id} price")
    percent = _decimal(fields.get("hs_discount_percentage") or "0",
                       f"line item {line_id} hs_discount_percentage")
    per_unit = _decimal(fields.get("discount") or "0", f"line item {line_id} discount")
    if percent and per_unit:
        raise MappingError(f"line item {line_id} has both a discount percentage and a "
                           "per-unit discount", code="ambiguous_discount")
    list_price = Money.of(price, currency).quantize(ROUND_HALF_UP)
    if per_unit:
        net = Money(price - per_unit, currency).quantize(ROUND_HALF_UP)
        percent = (per_unit * 100 / price).quantize(Decimal("0.0001")) if price else Decimal(0)
    else:
        net = Money(price * (100 - percent) / 100, currency).quantize(ROUND_HALF_UP)
    own_start = _date(fields.get("hs_recurring_billing_start_date"),
                      "hs_recurring_billing_start_date")
    return CommercialLine(line_id=line_id, product_code=_product(item),
                          quantity=_quantity(fields.get("quantity"), line_id),
                          list_unit_price=list_price, discount_percent=percent,
                          net_unit_price=net, start_date=max(own_start or start, start),
                          end_date=end)


def _product(item: Obj) -> str:
    fields = props(item)
    sku = _text(fields, "hs_sku").strip()
    if sku:
        return sku
    product = _text(fields, "hs_product_id").strip()
    if product:
        return f"hubspot-product-{product}"
    raise MappingError(f"line item {item['id']} names no product (hs_sku, hs_product_id)",
                       code="master_data_mismatch")


def _quantity(value: object, line_id: str) -> int:
    number = _decimal(value, f"line item {line_id} quantity")
    if number != number.to_integral_value() or not 0 <= number <= QUANTITY_MAX:
        raise MappingError(f"line item {line_id} quantity {number} is not a whole number in "
                           f"[0, {QUANTITY_MAX}]", code="invalid_quantity")
    return int(number)


def _frequency(items: Sequence[Obj]) -> BillingFrequency:
    said = {_text(props(i), "recurringbillingfrequency") for i in items} - {""}
    if not said:
        return BillingFrequency.ANNUAL
    if len(said) > 1:
        raise MappingError(f"line items bill at different frequencies: {sorted(said)}",
                           code="mixed_billing_frequency")
    (only,) = said
    if only not in _FREQUENCIES:
        raise MappingError(f"billing frequency {only[:32]!r} is not one of "
                           f"{', '.join(_FREQUENCIES)}", code="unsupported_frequency")
    return _FREQUENCIES[only]


def _approved_quote(quotes: Sequence[Obj]) -> str | None:
    """The id of the deal's approved quote most recently changed, if any."""
    good = [q for q in quotes if _text(props(q), "hs_status") in APPROVED_QUOTE]
    good.sort(key=lambda q: (modified_at(q) or datetime.min.replace(tzinfo=UTC), q["id"]))
    return str(good[-1]["id"]) if good else None


def primary_company(deal: Obj, companies: Sequence[Obj]) -> str:
    links = snapshot.associated(deal, "companies")
    primary = [str(link["id"]) for link in links if link.get("type") == "deal_to_company"]
    fetched = {str(c["id"]) for c in companies}
    chosen = primary or [str(link["id"]) for link in links]
    if len(set(chosen)) != 1:
        raise MappingError(f"deal {deal['id']} needs one primary company, it has "
                           f"{len(set(chosen))}", code="customer_missing")
    if chosen[0] not in fetched:
        raise MappingError(f"deal {deal['id']}: company {chosen[0]} was not fetched",
                           code="invalid_snapshot")
    return chosen[0]


def customer_account(settings: HubSpotSettings, company: Obj, version: int) -> CustomerAccount:
    fields = props(company)
    company_id = str(company["id"])
    name = _text(fields, "name").strip()
    if not name:
        raise MappingError(f"company {company_id} has no name", code="master_data_mismatch")
    country = _text(fields, "country").strip().upper()
    if not _COUNTRY.match(country):
        raise MappingError(f"company {company_id} country {country[:32]!r} is not an ISO "
                           "3166-1 alpha-2 code", code="master_data_mismatch")
    state = _text(fields, "state").strip().upper()
    if state and not _REGION.match(state):
        raise MappingError(f"company {company_id} state {state[:32]!r} is not a subdivision "
                           "code (NY, CA, …)", code="master_data_mismatch")
    vat = _text(fields, settings.vat_property).strip() or None
    return CustomerAccount(id=company_id, name=name, legal_entity=settings.legal_entity,
                           currency=settings.default_currency, billing_country=country,
                           version=version, refs=ExternalRefs.of({REF: company_id}),
                           billing_region=state or None, tax_id=vat, address=_address(fields))


def _address(fields: Mapping[str, Any]) -> PostalAddress | None:
    street = tuple(s for s in (_text(fields, "address").strip(),
                               _text(fields, "address2").strip()) if s)
    city = _text(fields, "city").strip()
    if not street and not city:
        return None
    return PostalAddress(street, city, _text(fields, "zip").strip() or None)


def modified_at(obj: Obj) -> datetime | None:
    value = props(obj).get("hs_lastmodifieddate") or obj.get("updatedAt")
    return _instant(value) if value else None


def _instant(value: object) -> datetime:
    text = str(value)
    try:
        if text.isdigit():
            return datetime.fromtimestamp(int(text) / 1000, UTC)
        moment = datetime.fromisoformat(text)
    except (ValueError, OverflowError, OSError) as exc:  # OSError: beyond the C library's time
        raise MappingError(f"{text[:40]!r} is not a HubSpot time", code="invalid_date") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _date(value: object, what: str) -> date | None:
    """A HubSpot date: `2026-01-01`, midnight UTC as ISO time or as epoch milliseconds."""
    if value is None or value == "":
        return None
    text = str(value)
    if len(text) == 10 and not text.isdigit():
        try:
            return date.fromisoformat(text)
        except ValueError as exc:
            raise MappingError(f"{what} {text!r} is not a date", code="invalid_date") from exc
    return _instant(text).astimezone(UTC).date()


def _months(value: object) -> int | None:
    match = _MONTHS.match(str(value or ""))
    if not match or not any(match.groups()):
        return None
    months = int(match.group(1) or 0) * 12 + int(match.group(2) or 0)
    return months or None


def _add_months(day: date, months: int) -> date:
    """`day` moved `months` later; a day past the month's end is its last day."""
    year, month = divmod(day.year * 12 + day.month - 1 + months, 12)
    last = calendar.monthrange(year, month + 1)[1]
    return date(year, month + 1, min(day.day, last))


def _text(fields: Mapping[str, Any], name: str) -> str:
    """A property's text ("" when unset): HubSpot sends every property value as a string."""
    value = fields.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise MappingError(f"property {name[:64]} is a {type(value).__name__}, not a string",
                           code="invalid_snapshot")
    return value


def _decimal(value: object, what: str) -> Decimal:
    if value is None or isinstance(value, bool | float):
        raise MappingError(f"{what} is missing or not a decimal string", code="invalid_amount")
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation as exc:
        raise MappingError(f"{what} {str(value)[:40]!r} is not a number",
                           code="invalid_amount") from exc
    if not number.is_finite() or abs(number) > NUMBER_MAX:
        raise MappingError(f"{what} is not a finite number within {NUMBER_MAX:,}",
                           code="invalid_amount")
    return number
