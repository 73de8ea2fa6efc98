"""The CPQ file drop: a CSV or JSON-lines file becomes one raw event per contract version.

Rules:
- `.jsonl` / `.ndjson`: each non-blank line is one document of finsync's CPQ JSON
  (`document`: a contract version or a customer). `.csv`: one row per contract line, with
  the contract's columns repeated on each row of a version (`CSV_COLUMNS`; a row with an
  empty `line_id` is a version with no line of its own, e.g. a cancellation). Every
  version's rows must agree on the contract's columns (`inconsistent_rows`).
- Each version becomes one body in finsync's CPQ JSON (`document.encode`), checked as the
  mapper will check it, so a file is judged whole before anything is stored: every
  problem is reported with its row or line number (errors as values, `FileDrop.problems`).
- A version listed twice with the same content is one version; with different content it
  is a problem (`conflicting_versions`). Versions keep the file's order; the hub applies
  each contract's versions in version order whatever order they are stored in.
- Limits (`CpqLimits`): file bytes, rows, versions, cell length; the hub's `InputLimits`
  bound each document as for an HTTP body (its values too, given the day of storage).
  Text is UTF-8 (a byte-order mark is skipped).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from finsync.connectors.cpq import document
from finsync.connectors.cpq.document import DEFAULT_SETTINGS, DocumentSettings
from finsync.connectors.cpq.limits import check_contract, parse_json
from finsync.domain.errors import FinsyncError, MappingError
from finsync.domain.events import CommercialContractApproved, CustomerUpserted, EventType
from finsync.domain.limits import check_event

CONTRACT_COLUMNS = ("contract_id", "version", "kind", "quote_id", "sold_to_id", "bill_to_id",
                    "legal_entity", "currency", "start_date", "end_date", "effective_date",
                    "billing_frequency", "proration", "renewal_uplift_percent", "auto_renew",
                    "approved_at")
LINE_COLUMNS = ("line_id", "product_code", "quantity", "list_unit_price", "discount_percent",
                "net_unit_price", "line_start_date", "line_end_date", "ramp")
CSV_COLUMNS = CONTRACT_COLUMNS + LINE_COLUMNS
REQUIRED_COLUMNS = frozenset({"contract_id", "version", "kind", "quote_id", "sold_to_id",
                              "currency", "start_date", "end_date", "billing_frequency",
                              "approved_at", "line_id"})
JSON_LINES = frozenset({".jsonl", ".ndjson"})


class FileDropError(FinsyncError):
    """A file that cannot be read at all (too large, not text, no header, unknown kind)."""

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class DroppedVersion:
    """One raw event to store: a contract version (or a customer) and where it was."""

    key: str  # the draft's source_event_id: commercial_contract:<id>:v<n>, customer:<id>:v<n>
    body: bytes  # finsync's CPQ JSON (`document.encode`)
    rows: tuple[int, ...]  # its row numbers (CSV, header = 1) or line numbers (JSON lines)


@dataclass(frozen=True, slots=True)
class Problem:
    row: int
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class FileDrop:
    versions: tuple[DroppedVersion, ...]
    problems: tuple[Problem, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.problems


def load_file(path: Path, settings: DocumentSettings = DEFAULT_SETTINGS,
              received_on: date | None = None) -> FileDrop:
    """The versions a dropped file holds and every problem found in it; raises
    `FileDropError` for a file that cannot be read at all. With `received_on` (the day the
    versions are stored: today), every value is also checked against the source's
    `InputLimits` as the hub will check it (dates, amounts, strings, integers)."""
    limits = settings.cpq_limits
    try:
        size = path.stat().st_size
        if size > limits.file_bytes_max:
            raise FileDropError(f"{path.name} has {size:,} bytes: at most "
                                f"{limits.file_bytes_max:,} (file_bytes_max)",
                                code="file_too_large")
        raw = path.read_bytes()
    except OSError as exc:
        raise FileDropError(f"{path} cannot be read: {exc.strerror}",
                            code="file_unreadable") from exc
    return load_bytes(raw, path.suffix.lower(), settings, received_on)


def load_bytes(raw: bytes, suffix: str, settings: DocumentSettings = DEFAULT_SETTINGS,
               received_on: date | None = None) -> FileDrop:
    """`load_file` on a file's bytes; `suffix` (".csv", ".jsonl", ".ndjson") says its kind."""
    if len(raw) > settings.cpq_limits.file_bytes_max:
        raise FileDropError(f"the file has {len(raw):,} bytes: at most "
                            f"{settings.cpq_limits.file_bytes_max:,} (file_bytes_max)",
                            code="file_too_large")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FileDropError(f"the file is not UTF-8 text: {exc.reason} at byte {exc.start}",
                            code="invalid_encoding") from exc
    if suffix == ".csv":
        items = list(_csv_documents(text, settings))
    elif suffix in JSON_LINES:
        items = list(_json_lines(text, settings))
    else:
        raise FileDropError(f"a CPQ file drop is .csv, .jsonl or .ndjson, not {suffix!r}",
                            code="unsupported_file")
    return _collected(items, settings, received_on)


# One document found in the file: its rows and the parsed JSON, or the problem found.
_Item = tuple[tuple[int, ...], object | Problem]


def _collected(items: list[_Item], settings: DocumentSettings,
               received_on: date | None) -> FileDrop:
    versions: dict[str, DroppedVersion] = {}
    problems: list[Problem] = []
    for rows, data in items:
        if isinstance(data, Problem):
            problems.append(data)
            continue
        try:
            key, body = _encoded(data, settings, received_on)
        except MappingError as exc:
            problems.append(Problem(rows[0], exc.code, str(exc)))
            continue
        seen = versions.get(key)
        if seen is None:
            versions[key] = DroppedVersion(key, body, rows)
        elif seen.body != body:
            problems.append(Problem(rows[0], "conflicting_versions",
                                    f"{key} is listed again (first at {seen.rows[0]}) with "
                                    "different content"))
    if len(versions) > settings.cpq_limits.versions_max:
        problems.append(Problem(0, "too_many_versions",
                                f"{len(versions):,} versions: at most "
                                f"{settings.cpq_limits.versions_max:,} (versions_max)"))
    return FileDrop(tuple(versions.values()), tuple(problems))


def _encoded(data: object, settings: DocumentSettings,
             received_on: date | None) -> tuple[str, bytes]:
    """The key and canonical body of one document, checked as the mapper checks it."""
    event, occurred_at = document.decode(data, settings)
    if received_on is not None:
        check_event(event, settings.limits, received_on)
    if isinstance(event, CommercialContractApproved):
        contract = event.commercial_contract
        check_contract(contract, settings.cpq_limits)
        key = f"commercial_contract:{contract.id}:v{contract.version}"
        return key, document.encode(contract, occurred_at)
    assert isinstance(event, CustomerUpserted)  # `document.decode` reads the two types
    customer = event.customer
    return f"customer:{customer.id}:v{customer.version}", document.encode(customer,
                                                                           occurred_at)


def _json_lines(text: str, settings: DocumentSettings) -> Iterator[_Item]:
    count = 0
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        count += 1
        if count > settings.cpq_limits.rows_max:
            yield (number,), Problem(number, "too_many_rows",
                                     f"more than {settings.cpq_limits.rows_max:,} JSON lines "
                                     "(rows_max)")
            return
        try:
            yield (number,), parse_json(line, settings.limits)
        except MappingError as exc:
            yield (number,), Problem(number, exc.code, str(exc))


def _csv_documents(text: str, settings: DocumentSettings) -> Iterator[_Item]:
    """The CSV's versions as documents of finsync's CPQ JSON, in the file's order."""
    rows = _csv_rows(text, settings)
    header = next(rows, None)
    if header is None:
        raise FileDropError("the CSV file is empty: it needs a header row", code="no_header")
    _, columns = header
    if isinstance(columns, Problem):
        yield (1,), columns
        return
    missing = sorted(REQUIRED_COLUMNS - set(columns))
    unknown = sorted(set(columns) - set(CSV_COLUMNS))
    if missing or unknown:
        raise FileDropError(f"CSV header: missing {missing}, unknown {unknown}; the columns "
                            f"are {', '.join(CSV_COLUMNS)}", code="invalid_header")
    grouped: dict[tuple[str, str], list[tuple[int, dict[str, str]]]] = {}
    for number, cells in rows:
        if isinstance(cells, Problem):
            yield (number,), cells
            continue
        row = dict(zip(columns, (c.strip() for c in cells), strict=False))
        if len(cells) != len(columns):
            yield (number,), Problem(number, "invalid_row", f"row {number} has {len(cells)} "
                                     f"cells, the header {len(columns)}")
            continue
        grouped.setdefault((row["contract_id"], row["version"]), []).append((number, row))
    for version_rows in grouped.values():
        yield tuple(n for n, _ in version_rows), _contract_document(version_rows)


def _csv_rows(text: str, settings: DocumentSettings
              ) -> Iterator[tuple[int, list[str] | Problem]]:
    limits = settings.cpq_limits
    reader = csv.reader(io.StringIO(text, newline=""))
    number = 0
    while True:
        number += 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield number, Problem(number, "invalid_row", f"row {number}: {exc}")
            return
        if number > limits.rows_max + 1:
            yield number, Problem(number, "too_many_rows",
                                  f"more than {limits.rows_max:,} rows (rows_max)")
            return
        long = [c for c in cells if len(c) > limits.cell_max_chars]
        if long:
            yield number, Problem(number, "cell_too_long",
                                  f"row {number} has a cell of {len(long[0]):,} characters: "
                                  f"at most {limits.cell_max_chars:,} (cell_max_chars)")
            continue
        if any(cells):
            yield number, cells


def _contract_document(rows: list[tuple[int, dict[str, str]]]) -> object | Problem:
    """One version's rows as finsync's CPQ JSON, or the problem that prevents it."""
    first_number, first = rows[0]
    for number, row in rows[1:]:
        differs = [c for c in CONTRACT_COLUMNS if row.get(c, "") != first.get(c, "")]
        if differs:
            return Problem(number, "inconsistent_rows",
                           f"row {number} differs from row {first_number} of the same "
                           f"version in {', '.join(differs)}")
    try:
        contract = _contract_fields(first)
        contract["lines"] = [_line(row, first) for _, row in rows if row.get("line_id")]
    except MappingError as exc:
        return Problem(first_number, exc.code, str(exc))
    return {"type": EventType.COMMERCIAL_CONTRACT_APPROVED.value,
            "occurred_at": first.get("approved_at", ""), "commercial_contract": contract}


def _contract_fields(row: Mapping[str, str]) -> dict[str, object]:
    contract: dict[str, object] = {
        "id": row["contract_id"], "version": _integer(row, "version"), "kind": row["kind"],
        "quote_id": row["quote_id"], "sold_to_id": row["sold_to_id"],
        "bill_to_id": row.get("bill_to_id") or row["sold_to_id"],
        "currency": row["currency"], "start_date": row["start_date"],
        "end_date": row["end_date"],
        "effective_date": row.get("effective_date") or row["start_date"],
        "billing_frequency": row["billing_frequency"]}
    optional = ("legal_entity", "proration", "renewal_uplift_percent")
    contract.update({name: row[name] for name in optional if row.get(name)})
    if row.get("auto_renew"):
        contract["auto_renew"] = _boolean(row["auto_renew"])
    return contract


def _line(row: Mapping[str, str], contract: Mapping[str, str]) -> dict[str, object]:
    return {"line_id": row["line_id"], "product_code": row.get("product_code", ""),
            "quantity": _integer(row, "quantity"),
            "list_unit_price": row.get("list_unit_price", ""),
            "discount_percent": row.get("discount_percent") or "0",
            "net_unit_price": row.get("net_unit_price", ""),
            "start_date": row.get("line_start_date") or contract.get("effective_date")
            or contract["start_date"],
            "end_date": row.get("line_end_date") or contract["end_date"],
            "ramp": _ramp(row.get("ramp", ""), row["line_id"])}


def _ramp(cell: str, line_id: str) -> list[dict[str, object]]:
    """`2026-06-01:600:8.50;2026-09-01:700:8.00`: date, quantity, net unit price."""
    steps: list[dict[str, object]] = []
    for part in filter(None, (p.strip() for p in cell.split(";"))):
        pieces = part.split(":")
        if len(pieces) != 3 or not pieces[1].isdigit():
            raise MappingError(f"line {line_id}: ramp step {part[:40]!r} is not "
                               "date:quantity:net_unit_price", code="invalid_ramp")
        steps.append({"starts_on": pieces[0], "quantity": int(pieces[1]),
                      "net_unit_price": pieces[2]})
    return steps


def _integer(row: Mapping[str, str], column: str) -> int:
    value = row.get(column, "")
    if not (value.isascii() and value.isdigit()) or len(value) > 13:
        raise MappingError(f"{column} {value[:20]!r} is not a whole number of at most 13 "
                           "digits", code="invalid_integer")
    return int(value)


def _boolean(value: str) -> bool:
    lowered = value.lower()
    if lowered not in {"true", "false"}:
        raise MappingError(f"auto_renew {value[:20]!r} is neither true nor false",
                           code="invalid_boolean")
    return lowered == "true"

