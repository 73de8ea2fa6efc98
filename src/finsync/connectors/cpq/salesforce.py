"""Salesforce CPQ: an approved quote and its lines as one commercial contract version.

How a quote and its lines arrive together (one raw event, so the mapper stays pure):
- Change Data Capture sends an `SBQQ__Quote__c` change with the changed fields only, and
  each `SBQQ__QuoteLine__c` in events of its own. A relay (a Pub/Sub API subscriber)
  therefore stores a **bundle**: `{"change_event": <the CDC message as delivered>,
  "records": <snapshot>}`, the snapshot read by the relay through the REST API after the
  event (the quote, its lines, for an amendment or renewal the `Contract` it changes, the
  `SBQQ__Subscription__c` records its lines name, and the `Order` for an Order trigger).
  The trigger may be the quote's change (approved), the amended `Contract`'s or the
  `Order`'s (created from the quote); all three name the same version.
- A Platform Event `Finsync_Quote_Approved__e` (published by a Flow on approval) carries
  the snapshot itself, as JSON text in `Snapshot__c`, with `Contract_Version__c`.
- The snapshot is `{"SBQQ__Quote__c": {…}, "SBQQ__QuoteLine__c": [{…}], "Contract": {…},
  "SBQQ__Subscription__c": [{…}], "Order": {…}}`, records as the REST API returns them.

Rules (docs/cpq/sources.md has the field table):
- Only a quote whose `SBQQ__Status__c` is `Approved` or `Accepted` is a version; any other
  status, a deleted record, maps to nothing (acknowledged).
- Version 1 is a quote of `SBQQ__Type__c` `Quote`; the contract's canonical id is that
  quote's id. An `Amendment` or `Renewal` quote changes the `Contract` in the snapshot (its
  `SBQQ__Quote__c` is the original quote: the canonical id; its id goes in `refs` under the
  source's name) and says its version in `Contract_Version__c` (event) or
  `Finsync_Contract_Version__c` (quote): Salesforce keeps no version counter, so the Flow
  that approves numbers them. An amendment whose every line has quantity 0 is a
  cancellation.
- `quote_id` (correlation id, business key) is the quote's id; `source_event_id` is
  `quote:<id>`, so the CDC bundle and the Platform Event of one quote are one event.
- Salesforce end dates are inclusive; finsync's are exclusive (one day later).
- A line's id is stable across versions: a new line's own id; a line that changes a
  subscription (`SBQQ__UpgradedSubscription__c`, `SBQQ__RenewedSubscription__c`) takes the id
  of the quote line that created the first subscription of its chain (through
  `SBQQ__RevisedSubscription__c`, then `SBQQ__QuoteLine__c`), or the subscription's id when
  the snapshot lacks it. Optional lines are not bought and are left out. Lines of one MDQ
  segment key (`SBQQ__SegmentKey__c`) are one line whose later segments are ramp steps.
- Prices are the CPQ's, at the currency's minor units (`price_precision` otherwise).
- Account records are not mapped to customers: Salesforce keeps no per-record version
  counter to order them by (send customers through the generic source instead).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from finsync.connectors.cpq import sfdc_records as sf
from finsync.connectors.cpq.limits import DEFAULT, CpqLimits, check_contract, parse_json
from finsync.connectors.cpq.sfdc_records import Record
from finsync.domain.catalog import BillingFrequency
from finsync.domain.commercial import (
    CommercialContract,
    CommercialKind,
    CommercialLine,
    CommercialRampStep,
    ProrationTerms,
)
from finsync.domain.envelope import DraftEnvelope
from finsync.domain.errors import DomainError, MappingError
from finsync.domain.events import CommercialContractApproved
from finsync.domain.limits import InputLimits
from finsync.domain.money import AMOUNT_CEILING, Money, exponent
from finsync.domain.refs import ExternalRefs

QUOTE, LINE, CONTRACT, ORDER, SUBSCRIPTION = ("SBQQ__Quote__c", "SBQQ__QuoteLine__c",
                                              "Contract", "Order", "SBQQ__Subscription__c")
PLATFORM_EVENT = "Finsync_Quote_Approved__e"
APPROVED = frozenset({"Approved", "Accepted"})
DELETED = frozenset({"DELETE", "GAP_DELETE"})
KINDS = {"Quote": CommercialKind.NEW, "Amendment": CommercialKind.AMENDMENT,
         "Renewal": CommercialKind.RENEWAL}
FREQUENCIES = {"Monthly": BillingFrequency.MONTHLY, "Quarterly": BillingFrequency.QUARTERLY,
               "Annual": BillingFrequency.ANNUAL}
VERSION_FIELD = "Finsync_Contract_Version__c"
_CHAIN_MAX = 100  # subscriptions followed back to the first of a chain
_ONE_DAY = timedelta(days=1)
_HUNDRED = Decimal(100)
DEFAULT_INPUT = InputLimits()


@dataclass(frozen=True, slots=True)
class SalesforceSettings:
    legal_entity: str
    currency: str = "USD"  # for an org without multi-currency (no CurrencyIsoCode)
    billing_frequency: BillingFrequency = BillingFrequency.MONTHLY  # quote names none
    proration: ProrationTerms = ProrationTerms.INVOICE_NOW
    limits: InputLimits = DEFAULT_INPUT
    cpq_limits: CpqLimits = DEFAULT


@dataclass(frozen=True, slots=True)
class _Trigger:
    occurred_at: datetime
    snapshot: Mapping[str, object]
    version: Decimal | None = None  # the Platform Event's Contract_Version__c
    entity: str | None = None  # the CDC event's entityName (None: a Platform Event)
    record_ids: tuple[str, ...] = ()


def translate(settings: SalesforceSettings, source: str, body: bytes) -> list[DraftEnvelope]:
    """The draft of the quote version a raw event carries, or none (pure)."""
    trigger = _trigger(parse_json(body, settings.limits), settings)
    if trigger is None:
        return []
    quote = sf.record(trigger.snapshot.get(QUOTE), QUOTE)
    quote_id = sf.required_text(quote, "Id", QUOTE)
    try:
        if sf.text(quote, "SBQQ__Status__c", QUOTE) not in APPROVED:
            return []
        _check_trigger(trigger, quote, quote_id)
        contract = _contract(quote, quote_id, trigger, settings, source)
        check_contract(contract, settings.cpq_limits)
    except MappingError as exc:
        raise exc.about(f"quote:{quote_id[:64]}") from exc.__cause__
    except DomainError as exc:
        raise MappingError(str(exc), code=exc.code,
                           subject=f"quote:{quote_id[:64]}") from exc
    return [DraftEnvelope(CommercialContractApproved(contract), source, f"quote:{quote_id}",
                          trigger.occurred_at, quote_id, business_key=quote_id)]


def _trigger(data: object, settings: SalesforceSettings) -> _Trigger | None:
    """The event that says a version exists, with its snapshot; None for a deletion."""
    if not isinstance(data, Mapping):
        raise MappingError("a Salesforce raw event is a JSON object", code="invalid_document")
    if "change_event" in data:
        return _change_event(data["change_event"], data.get("records"))
    message = _message_payload(data)
    snapshot_text = message.get("Snapshot__c")
    if not isinstance(snapshot_text, str):
        raise MappingError(f"a {PLATFORM_EVENT} needs Snapshot__c (JSON text)",
                           code="field_missing")
    snapshot = parse_json(snapshot_text, settings.limits)
    if not isinstance(snapshot, Mapping):
        raise MappingError("Snapshot__c must be a JSON object", code="invalid_document")
    return _Trigger(sf.instant(message.get("CreatedDate"), f"{PLATFORM_EVENT}.CreatedDate"),
                    snapshot, sf.number(message, "Contract_Version__c", PLATFORM_EVENT))


def _message_payload(message: object) -> Mapping[str, object]:
    """A streaming message's payload: CometD's `{"data": {"payload": …}}` or the Pub/Sub
    API's decoded `{"payload": …}`."""
    if isinstance(message, Mapping) and isinstance(message.get("data"), Mapping):
        message = message["data"]
    payload = message.get("payload") if isinstance(message, Mapping) else None
    if not isinstance(payload, Mapping):
        raise MappingError("a streaming message needs a payload object",
                           code="invalid_document")
    return payload


def _change_event(message: object, snapshot: object) -> _Trigger | None:
    header = _message_payload(message).get("ChangeEventHeader")
    if not isinstance(header, Mapping):
        raise MappingError("a change event needs its ChangeEventHeader", code="field_missing")
    change_type = sf.required_text(header, "changeType", "ChangeEventHeader")
    if change_type in DELETED:
        return None
    if not isinstance(snapshot, Mapping):
        raise MappingError("a change event bundle needs its records (the snapshot)",
                           code="snapshot_missing")
    ids = header.get("recordIds")
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise MappingError("ChangeEventHeader.recordIds must be a list of ids",
                           code="invalid_field")
    stamp = sf.number(header, "commitTimestamp", "ChangeEventHeader")
    if stamp is None or not 0 < stamp < 10**14:
        raise MappingError("ChangeEventHeader.commitTimestamp must be milliseconds since "
                           "1970", code="invalid_field")
    occurred_at = datetime.fromtimestamp(int(stamp) / 1000, UTC)
    entity = sf.required_text(header, "entityName", "ChangeEventHeader")
    return _Trigger(occurred_at, snapshot, None, entity, tuple(ids))


def _check_trigger(trigger: _Trigger, quote: Record, quote_id: str) -> None:
    """A change event must be about the snapshot's quote: the quote itself, the contract
    it amends, or the order made from it."""
    if trigger.entity is None:
        return
    named = {QUOTE: quote_id, CONTRACT: sf.text(quote, "SBQQ__MasterContract__c", QUOTE)}
    if trigger.entity == ORDER:
        order = sf.record(trigger.snapshot.get(ORDER), ORDER)
        if sf.text(order, "SBQQ__Quote__c", ORDER) == quote_id:
            named[ORDER] = sf.text(order, "Id", ORDER)
    if trigger.entity not in (QUOTE, CONTRACT, ORDER):
        raise MappingError(f"a change of {trigger.entity[:64]} names no quote version",
                           code="unsupported_entity")
    if named.get(trigger.entity) not in trigger.record_ids:
        raise MappingError(f"the {trigger.entity} change is not about quote {quote_id}'s "
                           "snapshot", code="snapshot_mismatch")


def _contract(quote: Record, quote_id: str, trigger: _Trigger, settings: SalesforceSettings,
              source: str) -> CommercialContract:
    kind = KINDS.get(sf.text(quote, "SBQQ__Type__c", QUOTE) or "Quote")
    if kind is None:
        raise MappingError(f"SBQQ__Type__c {sf.text(quote, 'SBQQ__Type__c', QUOTE)!r:.40} "
                           "is not Quote, Amendment or Renewal", code="unsupported_quote_type")
    currency = sf.text(quote, "CurrencyIsoCode", QUOTE) or settings.currency
    exponent(currency)  # an unknown currency is refused before any price is read
    start, end = _term(quote)
    effective = start
    contract_id, refs, version = quote_id, ExternalRefs(), 1
    if kind is not CommercialKind.NEW:
        master = _master_contract(quote, trigger)
        contract_id = sf.required_text(master, "SBQQ__Quote__c", CONTRACT)
        refs = ExternalRefs.of({source: sf.required_text(master, "Id", CONTRACT)})
        version = _version(quote, trigger)
        if kind is CommercialKind.AMENDMENT:  # the contract's term; effective: the quote's
            start = _required_day(master, "StartDate", CONTRACT)
            end = _required_day(master, "EndDate", CONTRACT) + _ONE_DAY
    lines = _lines(trigger.snapshot, quote_id, currency, effective, end)
    if kind is CommercialKind.AMENDMENT and lines and all(x.quantity == 0 for x in lines):
        kind = CommercialKind.CANCELLATION
    account = sf.required_text(quote, "SBQQ__Account__c", QUOTE)
    return CommercialContract(
        contract_id, version, kind, quote_id, account, account, settings.legal_entity,
        currency, start, end, effective, _frequency(quote, settings), lines,
        settings.proration, sf.number(quote, "SBQQ__RenewalUpliftRate__c", QUOTE) or
        Decimal(0), refs=refs)


def _term(quote: Record) -> tuple[date, date]:
    """The quote's term, end exclusive: its end date, else start + subscription term."""
    start = _required_day(quote, "SBQQ__StartDate__c", QUOTE)
    end = sf.day(quote, "SBQQ__EndDate__c", QUOTE)
    if end is not None:
        return start, end + _ONE_DAY
    months = sf.number(quote, "SBQQ__SubscriptionTerm__c", QUOTE)
    if months is None or months != int(months) or not 0 < months <= 1200:
        raise MappingError("SBQQ__Quote__c needs SBQQ__EndDate__c or a whole "
                           "SBQQ__SubscriptionTerm__c of 1 to 1200 months",
                           code="field_missing")
    return start, _add_months(start, int(months))


def _add_months(day: date, months: int) -> date:
    total = day.month - 1 + months
    year, month = day.year + total // 12, total % 12 + 1
    for candidate in (day.day, 30, 29, 28):
        try:
            return day.replace(year=year, month=month, day=min(day.day, candidate))
        except ValueError:
            continue
    raise AssertionError("every month has a 28th")


def _master_contract(quote: Record, trigger: _Trigger) -> Record:
    master = trigger.snapshot.get(CONTRACT)
    if master is None:
        raise MappingError("an amendment or renewal quote needs the Contract it changes in "
                           "the snapshot", code="snapshot_missing")
    record = sf.record(master, CONTRACT)
    named = sf.text(quote, "SBQQ__MasterContract__c", QUOTE)
    if named is not None and named != sf.text(record, "Id", CONTRACT):
        raise MappingError(f"the snapshot's Contract is not the quote's master contract "
                           f"{named[:64]}", code="snapshot_mismatch")
    return record


def _version(quote: Record, trigger: _Trigger) -> int:
    value = trigger.version
    if value is None:
        value = sf.number(quote, VERSION_FIELD, QUOTE)
    if value is None:
        raise MappingError(f"an amendment or renewal needs its version: Contract_Version__c "
                           f"on the event or {VERSION_FIELD} on the quote",
                           code="version_missing")
    if value != int(value) or not 2 <= value < 2**31:
        raise MappingError(f"version {value} must be a whole number from 2 (version 1 is "
                           "the original quote)", code="invalid_version")
    return int(value)


def _frequency(quote: Record, settings: SalesforceSettings) -> BillingFrequency:
    named = sf.text(quote, "SBQQ__BillingFrequency__c", QUOTE)
    if named is None:
        return settings.billing_frequency
    frequency = FREQUENCIES.get(named)
    if frequency is None:
        raise MappingError(f"billing frequency {named[:40]!r} is not one finsync bills "
                           f"({', '.join(FREQUENCIES)})", code="unsupported_billing_frequency")
    return frequency


def _lines(snapshot: Mapping[str, object], quote_id: str, currency: str, effective: date,
           end: date) -> tuple[CommercialLine, ...]:
    """The bought lines of the quote, MDQ segments folded into ramp steps."""
    roots = _subscription_roots(sf.records(snapshot.get(SUBSCRIPTION), SUBSCRIPTION))
    groups: dict[str, list[Record]] = {}
    for line in sf.records(snapshot.get(LINE), LINE):
        if sf.text(line, "SBQQ__Quote__c", LINE) not in (None, quote_id):
            raise MappingError(f"quote line {sf.text(line, 'Id', LINE)!r:.40} is not "
                               f"quote {quote_id}'s", code="snapshot_mismatch")
        if sf.flag(line, "SBQQ__Optional__c", LINE):
            continue
        key = sf.text(line, "SBQQ__SegmentKey__c", LINE) or sf.required_text(line, "Id", LINE)
        groups.setdefault(key, []).append(line)
    return tuple(_line(segments, roots, currency, effective, end)
                 for segments in groups.values())


def _line(segments: list[Record], roots: Mapping[str, str], currency: str, effective: date,
          end: date) -> CommercialLine:
    ordered = sorted(segments, key=lambda s: sf.number(s, "SBQQ__SegmentIndex__c", LINE) or 0)
    first, last = ordered[0], ordered[-1]
    line_id = _line_id(first, roots)
    quantity, net = _quantity(first, line_id), _price(first, "SBQQ__NetPrice__c", currency)
    listed = _price(first, "SBQQ__ListPrice__c", currency)
    ramp = tuple(CommercialRampStep(_line_start(s, effective), _quantity(s, line_id),
                                    _price(s, "SBQQ__NetPrice__c", currency))
                 for s in ordered[1:])
    return CommercialLine(line_id, _product(first), quantity, listed,
                          _discount(first, listed, net), net, _line_start(first, effective),
                          _line_end(last, end), ramp)


def _subscription_roots(subscriptions: Sequence[Record]) -> dict[str, str]:
    """Each subscription's stable line id: the quote line that created the first
    subscription of its chain (`SBQQ__RevisedSubscription__c` followed back)."""
    by_id = {sf.required_text(s, "Id", SUBSCRIPTION): s for s in subscriptions}
    roots: dict[str, str] = {}
    for sub_id in by_id:
        current = sub_id
        for _ in range(_CHAIN_MAX):
            revised = sf.text(by_id[current], "SBQQ__RevisedSubscription__c", SUBSCRIPTION)
            if revised is None or revised not in by_id:
                break
            current = revised
        origin = sf.text(by_id[current], "SBQQ__QuoteLine__c", SUBSCRIPTION)
        roots[sub_id] = origin or current
    return roots


def _line_id(line: Record, roots: Mapping[str, str]) -> str:
    changed = (sf.text(line, "SBQQ__UpgradedSubscription__c", LINE)
               or sf.text(line, "SBQQ__RenewedSubscription__c", LINE))
    if changed is None:
        return sf.required_text(line, "Id", LINE)
    return roots.get(changed, changed)


def _product(line: Record) -> str:
    code = sf.text(line, "SBQQ__ProductCode__c", LINE)
    return code or sf.required_text(line, "SBQQ__Product__c", LINE)


def _quantity(line: Record, line_id: str) -> int:
    value = sf.number(line, "SBQQ__Quantity__c", LINE)
    if value is None or value != int(value) or value < 0:
        raise MappingError(f"line {line_id}: SBQQ__Quantity__c must be a whole number, at "
                           "least 0", code="invalid_quantity")
    return int(value)


def _price(line: Record, field: str, currency: str) -> Money:
    value = sf.number(line, field, LINE)
    if value is None:
        raise MappingError(f"SBQQ__QuoteLine__c.{field} is missing", code="field_missing")
    if abs(value) >= AMOUNT_CEILING:
        raise MappingError(f"SBQQ__QuoteLine__c.{field} is out of range: below "
                           f"{AMOUNT_CEILING:,} (AMOUNT_CEILING)", code="amount_out_of_range")
    minor = Decimal(1).scaleb(-exponent(currency))
    rounded = value.quantize(minor)
    if rounded != value:
        raise MappingError(f"SBQQ__QuoteLine__c.{field} {value} has more decimal places "
                           f"than {currency} has minor units", code="price_precision")
    return Money(rounded, currency)


def _discount(line: Record, listed: Money, net: Money) -> Decimal:
    """CPQ's discount percent, else the one net price and list price imply."""
    named = sf.number(line, "SBQQ__Discount__c", LINE)
    if named is not None:
        return named
    if listed.amount <= 0 or net.amount >= listed.amount:
        return Decimal(0)
    return ((1 - net.amount / listed.amount) * _HUNDRED).quantize(Decimal("0.0001"))


def _line_start(line: Record, default: date) -> date:
    return (sf.day(line, "SBQQ__EffectiveStartDate__c", LINE)
            or sf.day(line, "SBQQ__StartDate__c", LINE) or default)


def _line_end(line: Record, default: date) -> date:
    inclusive = (sf.day(line, "SBQQ__EffectiveEndDate__c", LINE)
                 or sf.day(line, "SBQQ__EndDate__c", LINE))
    return default if inclusive is None else inclusive + _ONE_DAY


def _required_day(rec: Record, field: str, sobject: str) -> date:
    value = sf.day(rec, field, sobject)
    if value is None:
        raise MappingError(f"{sobject}.{field} is missing", code="field_missing")
    return value
