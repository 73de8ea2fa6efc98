"""The CPQ file drop: CSV and JSON lines, one raw event per contract version."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest

from finsync.connectors.cpq import document
from finsync.connectors.cpq.document import DocumentSettings
from finsync.connectors.cpq.filedrop import CSV_COLUMNS, FileDropError, load_bytes, load_file
from finsync.connectors.cpq.limits import CpqLimits
from finsync.domain.commercial import CommercialContract
from finsync.domain.events import CommercialContractApproved
from finsync.domain.refs import ExternalRefs
from tests.unit.cpq.cpqkit import APPROVED_AT, contract, customer, upgrade

HEADER = ",".join(CSV_COLUMNS)
# contract columns, then line columns: v1 with 500 seats, v2 with 800 seats + analytics ramp
V1 = ("ct-acme,1,new,q-acme-1,acc-acme,acc-acme,le_us,USD,2026-01-01,2027-01-01,2026-01-01,"
      "monthly,invoice_now,0,true,2026-05-15T10:30:00+00:00")
V2 = ("ct-acme,2,amendment,q-acme-2,acc-acme,acc-acme,le_us,USD,2026-01-01,2027-01-01,"
      "2026-05-15,monthly,invoice_now,0,true,2026-05-15T10:30:00+00:00")
SEATS_500 = "ql-seats,SEAT,500,10.00,10,9.00,2026-01-01,2027-01-01,"
SEATS_800 = "ql-seats,SEAT,800,10.00,10,9.00,2026-01-01,2027-01-01,"
ANALYTICS = ("ql-analytics,ANALYTICS-PREMIUM,1,2500.00,20,2000.00,2026-05-15,2027-01-01,"
             "2026-09-01:2:1900.00")
CSV = "\n".join([HEADER, f"{V1},{SEATS_500}", f"{V2},{SEATS_800}", f"{V2},{ANALYTICS}"])


def contracts(text: str, suffix: str = ".csv") -> list[CommercialContract]:
    drop = load_bytes(text.encode(), suffix)
    assert drop.ok, drop.problems
    found = []
    for version in drop.versions:
        (draft,) = document.translate(DocumentSettings(), "crm", version.body)
        assert isinstance(draft.event, CommercialContractApproved)
        assert draft.source_event_id == version.key
        found.append(draft.event.commercial_contract)
    return found


def test_a_csv_becomes_one_body_per_contract_version_as_the_mapper_reads_it() -> None:
    unreferenced = ExternalRefs()  # the CSV has no refs column
    assert contracts(CSV) == [replace(contract(), refs=unreferenced),
                              replace(upgrade(), refs=unreferenced)]


def test_the_version_rows_say_where_it_came_from() -> None:
    drop = load_bytes(CSV.encode(), ".csv")
    assert [(v.key, v.rows) for v in drop.versions] == [
        ("commercial_contract:ct-acme:v1", (2,)), ("commercial_contract:ct-acme:v2", (3, 4))]


def test_optional_columns_take_their_defaults() -> None:
    header = ("contract_id,version,kind,quote_id,sold_to_id,currency,start_date,end_date,"
              "billing_frequency,approved_at,line_id,product_code,quantity,list_unit_price,"
              "net_unit_price")
    row = ("ct-9,1,new,q-9,acc-9,EUR,2026-01-01,2027-01-01,annual,2026-01-01T00:00:00Z,"
           "l1,SEAT,5,10.00,10.00")
    drop = load_bytes(f"{header}\n{row}\n".encode(), ".csv", DocumentSettings("le_eu"))
    (version,) = drop.versions
    (draft,) = document.translate(DocumentSettings(), "crm", version.body)
    made = draft.event.document
    assert isinstance(made, CommercialContract)
    assert (made.bill_to_id, made.legal_entity, made.effective_date.isoformat()) == (
        "acc-9", "le_eu", "2026-01-01")
    assert made.lines[0].discount_percent == 0


def test_json_lines_hold_contracts_and_customers() -> None:
    lines = [document.encode(customer(), APPROVED_AT), b"",
             document.encode(contract(), APPROVED_AT), document.encode(upgrade(), APPROVED_AT)]
    drop = load_bytes(b"\n".join(lines), ".jsonl")
    assert drop.ok
    assert [(v.key, v.rows) for v in drop.versions] == [
        ("customer:acc-acme:v1", (1,)), ("commercial_contract:ct-acme:v1", (3,)),
        ("commercial_contract:ct-acme:v2", (4,))]
    assert drop.versions[2].body == document.encode(upgrade(), APPROVED_AT)


def test_a_version_listed_twice_alike_is_one_and_differently_is_a_problem() -> None:
    same = load_bytes(f"{CSV}\n{V1},{SEATS_500}".encode(), ".csv")
    assert not same.ok  # a repeated row is a second line with the same id: a broken rule
    body = document.encode(contract(), APPROVED_AT)
    repeated = load_bytes(b"\n".join([body, body]), ".jsonl")
    assert repeated.ok and len(repeated.versions) == 1
    other = document.encode(contract(1, replace(contract().lines[0], quantity=9)), APPROVED_AT)
    conflicting = load_bytes(b"\n".join([body, other]), ".jsonl")
    assert [(p.row, p.code) for p in conflicting.problems] == [(2, "conflicting_versions")]


def test_every_problem_is_reported_with_its_row() -> None:
    bad_quantity = V2 + ",ql-seats,SEAT,lots,10.00,10,9.00,,,"
    differs = V2.replace("q-acme-2", "q-other") + "," + ANALYTICS
    text = "\n".join([HEADER, f"{V1},{SEATS_500}", bad_quantity, differs,
                      V1.replace("ct-acme,1", "ct-b,1") + ",l1,SEAT,1,10.00,0,10.00,,,bad"])
    drop = load_bytes(text.encode(), ".csv")
    assert [(p.row, p.code) for p in drop.problems] == [
        (4, "inconsistent_rows"), (5, "invalid_ramp")]
    assert [v.key for v in drop.versions] == ["commercial_contract:ct-acme:v1"]


def test_a_file_with_a_bad_header_or_kind_is_refused_whole(tmp_path: Path) -> None:
    with pytest.raises(FileDropError) as error:
        load_bytes(b"contract_id,colour\n", ".csv")
    assert error.value.code == "invalid_header"
    with pytest.raises(FileDropError) as error:
        load_bytes(b"x", ".xlsx")
    assert error.value.code == "unsupported_file"
    with pytest.raises(FileDropError) as error:
        load_bytes(b"\xff\xfe\x00", ".csv")
    assert error.value.code == "invalid_encoding"
    with pytest.raises(FileDropError) as error:
        load_file(tmp_path / "missing.csv")
    assert error.value.code == "file_unreadable"


def test_limits_bound_the_file() -> None:
    tight = DocumentSettings(cpq_limits=CpqLimits(file_bytes_max=100))
    with pytest.raises(FileDropError) as error:
        load_bytes(CSV.encode(), ".csv", tight)
    assert error.value.code == "file_too_large"
    few_rows = DocumentSettings(cpq_limits=CpqLimits(rows_max=2))
    assert [p.code for p in load_bytes(CSV.encode(), ".csv", few_rows).problems] == [
        "too_many_rows"]
    one_version = DocumentSettings(cpq_limits=CpqLimits(versions_max=1))
    assert [p.code for p in load_bytes(CSV.encode(), ".csv", one_version).problems] == [
        "too_many_versions"]
    short_cells = DocumentSettings(cpq_limits=CpqLimits(cell_max_chars=8))
    assert "cell_too_long" in {p.code for p in
                               load_bytes(CSV.encode(), ".csv", short_cells).problems}
    jsonl = b"\n".join([document.encode(customer(), APPROVED_AT)] * 3)
    assert [p.code for p in load_bytes(jsonl, ".ndjson", few_rows).problems] == [
        "too_many_rows"]


def test_load_file_reads_a_file_by_its_suffix(tmp_path: Path) -> None:
    path = tmp_path / "contracts.CSV"
    path.write_text("\ufeff" + CSV, encoding="utf-8")  # Excel's byte-order mark
    assert len(load_file(path).versions) == 2
    jsonl = tmp_path / "crm.jsonl"
    jsonl.write_bytes(document.encode(customer(), APPROVED_AT) + b"\n")
    (version,) = load_file(jsonl).versions
    assert json.loads(version.body)["type"] == "customer.upserted"


def test_given_the_day_of_storage_every_value_is_checked_as_the_hub_will() -> None:
    far = CSV.replace("2027-01-01", "2099-01-01")  # past years_ahead (30) of 2026-05-15
    assert load_bytes(far.encode(), ".csv").ok  # the rules of a contract hold
    checked = load_bytes(far.encode(), ".csv", received_on=date(2026, 5, 15))
    assert {p.code for p in checked.problems} == {"date_out_of_range"}
