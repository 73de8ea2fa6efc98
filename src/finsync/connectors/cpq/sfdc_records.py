"""Reading Salesforce records as the REST API and the streaming APIs spell them.

Rules:
- A record is a JSON object of field API names (`SBQQ__NetPrice__c`), with an optional
  `attributes.type` naming its sObject type, which must then be the expected one.
- Dates are `YYYY-MM-DD`; date-times ISO 8601 (`2026-05-15T09:30:00.000+0000` as the REST
  API writes them, or with `Z`); numbers are JSON numbers (read as `Decimal`, never float).
- A field missing or null reads as absent; a field of the wrong kind is a `MappingError`
  naming the record's type, field and the rule (`invalid_field`); a required one missing
  is `field_missing`; a number at or past `NUMBER_CEILING` is `number_out_of_range`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import Decimal

from finsync.domain.errors import MappingError

Record = Mapping[str, object]
_OFFSET = re.compile(r"([+-]\d{2})(\d{2})$")  # +0000 -> +00:00
_DATE_TIME_MAX_CHARS = 40
NUMBER_CEILING = 10**15  # a Salesforce number field holds at most 18 digits in all


def record(data: object, sobject: str) -> Record:
    if not isinstance(data, Mapping):
        raise MappingError(f"a {sobject} record must be a JSON object",
                           code="invalid_record")
    attributes = data.get("attributes")
    if isinstance(attributes, Mapping) and attributes.get("type") not in (None, sobject):
        raise MappingError(f"expected a {sobject} record, not a "
                           f"{str(attributes.get('type'))[:64]}", code="snapshot_mismatch")
    return data


def records(data: object, sobject: str) -> list[Record]:
    if data is None:
        return []
    if not isinstance(data, list):
        raise MappingError(f"{sobject} must be a list of records", code="invalid_record")
    return [record(item, sobject) for item in data]


def text(rec: Record, field: str, sobject: str) -> str | None:
    value = rec.get(field)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _invalid(sobject, field, "a string")
    return value


def required_text(rec: Record, field: str, sobject: str) -> str:
    value = text(rec, field, sobject)
    if not value:
        raise MappingError(f"{sobject}.{field} is missing", code="field_missing")
    return value


def number(rec: Record, field: str, sobject: str) -> Decimal | None:
    value = rec.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise _invalid(sobject, field, "a number")
    read = Decimal(value)
    if not abs(read) < NUMBER_CEILING:
        raise MappingError(f"{sobject}.{field} is out of range: below {NUMBER_CEILING:,} in "
                           "absolute value (NUMBER_CEILING)", code="number_out_of_range")
    return read


def flag(rec: Record, field: str, sobject: str) -> bool:
    value = rec.get(field)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise _invalid(sobject, field, "true or false")
    return value


def day(rec: Record, field: str, sobject: str) -> date | None:
    value = text(rec, field, sobject)
    if value is None:
        return None
    if len(value) != len("YYYY-MM-DD"):
        raise _invalid(sobject, field, "a date (YYYY-MM-DD)")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise _invalid(sobject, field, "a date (YYYY-MM-DD)") from None


def instant(value: object, where: str) -> datetime:
    """A Salesforce date-time (`2026-05-15T09:30:00.000+0000`, `...Z`) in UTC."""
    if not isinstance(value, str) or len(value) > _DATE_TIME_MAX_CHARS:
        raise MappingError(f"{where} must be an ISO 8601 date-time", code="invalid_field")
    spelled = _OFFSET.sub(r"\1:\2", value.replace("Z", "+00:00"))
    try:
        moment = datetime.fromisoformat(spelled)
    except ValueError:
        raise MappingError(f"{where} {value!r} is not an ISO 8601 date-time",
                           code="invalid_field") from None
    if moment.tzinfo is None:
        raise MappingError(f"{where} {value!r} has no time zone", code="invalid_field")
    return moment.astimezone(UTC)


def _invalid(sobject: str, field: str, kind: str) -> MappingError:
    return MappingError(f"{sobject}.{field} must be {kind}", code="invalid_field")
