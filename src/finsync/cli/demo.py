"""`finsync demo`: the reference workflow's event stream through the hub, with faults.

Until the embedded billing and revenue systems exist, the demo drives the hub with the
canonical example stream (examples/reference-workflow.jsonl) and posts to the embedded
ledger. It injects the faults the hub itself must catch: a duplicate webhook, amendment
versions out of order, a payload that is not JSON and a change from a system that does
not own it, then replays the whole log to show that the books do not change.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import tomllib
from datetime import date
from pathlib import Path
from typing import Any

import finsync
from finsync.bootstrap import build_hub, build_ledger_service
from finsync.cli import output
from finsync.config import DEFAULT_CONFIG, FinsyncConfig, parse_config
from finsync.domain.errors import MappingError
from finsync.hub.replay import ReplayFilter
from finsync.hub.service import Hub
from finsync.systems.ledger.service import LedgerService


def example_stream() -> Path:
    """The stream ships in the wheel (finsync/examples) and sits at the repo root."""
    for base in (Path(finsync.__file__).parent, Path(finsync.__file__).parents[2]):
        candidate = base / "examples" / "reference-workflow.jsonl"
        if candidate.exists():
            return candidate
    raise FileNotFoundError("reference-workflow.jsonl is missing from this installation")


def _faulty_order(lines: list[bytes]) -> list[bytes]:
    """Deliver the amendment (v2) before the contract it amends (v1), and one line twice."""
    types = [json.loads(line)["type"] for line in lines]
    created, amended = types.index("contract.created"), types.index("contract.amended")
    reordered = list(lines)
    reordered[created], reordered[amended] = lines[amended], lines[created]
    return [*reordered, lines[types.index("invoice.issued")]]


def _forged(lines: list[bytes]) -> bytes:
    """A copy of a payment sent by the CRM, which does not own payments."""
    payment = next(json.loads(line) for line in lines if b'"payment.applied"' in line)
    payment.update(source="crm", source_event_id="crm-evt-1")
    return json.dumps(payment).encode()


def _send(hub: Hub, body: bytes) -> str | None:
    try:
        hub.intake.receive("canonical", body, {"content-type": "application/json"})
    except MappingError as exc:
        return exc.code
    return None


def run_demo(directory: Path | None, *, as_json: bool) -> dict[str, Any]:
    workdir = directory or Path(tempfile.mkdtemp(prefix="finsync-demo-"))
    shutil.rmtree(workdir / "var", ignore_errors=True)
    config = parse_config(tomllib.loads(DEFAULT_CONFIG.read_text()), workdir.resolve())
    hub = build_hub(config)
    try:
        return _drive(hub, config, workdir, as_json=as_json)
    finally:
        hub.engine.dispose()


def _drive(hub: Hub, config: FinsyncConfig, workdir: Path, *, as_json: bool) -> dict[str, Any]:
    lines = [line for line in example_stream().read_bytes().splitlines() if line.strip()]
    refused = [code for body in [*_faulty_order(lines), b"{not json", _forged(lines)]
               if (code := _send(hub, body))]
    first = hub.run_until_idle()
    ledger = build_ledger_service(config, hub.engine)
    books_before = _books(ledger)
    replayed = hub.replay(ReplayFilter(everything=True))
    hub.run_until_idle()
    books_after = _books(ledger)
    amendment = next(json.loads(line)["correlation_id"] for line in lines
                     if b'"contract.amended"' in line)
    report = {
        "workdir": str(workdir), "sent": len(lines) + 3, "refused_at_intake": refused,
        "outcomes": dict(first.outcomes), "status": hub.status(),
        "journal_entries": books_after["entries"],
        "books_unchanged_by_replay": books_before == books_after,
        "trial_balance": books_after["trial_balance"], "subledgers": books_after["subledgers"],
        "replay": {"events": replayed.events, "deliveries_resent": replayed.requeued},
        "amendment_correlation_id": amendment,
        "amendment_timeline": [{"milestone": m["name"], "system": m["target"],
                                "at": m["recorded_at"].isoformat()}
                               for m in hub.timeline(amendment)],
        "exceptions": hub.exceptions(status=None),
    }
    report["controls"] = _controls(report)
    if as_json:
        output.emit_json(report)
    else:
        _print(report)
    return report


AS_OF = date(2026, 12, 31)


def _books(ledger: LedgerService) -> dict[str, Any]:
    """The ledger's state in a comparable form: entries, trial balance, subledger checks."""
    entities = [e for e, _ in ledger.entities()]
    return {
        "entries": [{"id": e.id, "entity": e.legal_entity, "date": e.posting_date.isoformat(),
                     "memo": e.memo, "correlation_id": e.correlation_id,
                     "lines": [[ln.account, ln.side.value, str(ln.amount)] for ln in e.lines]}
                    for e in ledger.entries()],
        "trial_balance": {e: {r.account: str(r.balance) for r in ledger.trial_balance(e, AS_OF)}
                          for e in entities},
        "subledgers": {e: ledger.subledger_check(e, AS_OF) for e in entities},
    }


def _controls(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Each injected fault, the control that must catch it, and whether it did."""
    classes = [e["class"] for e in report["exceptions"]]
    status = report["status"]
    return [
        {"fault": "invoice webhook delivered twice", "control": "de-duplication",
         "caught": status["duplicates_ignored"] == 1 and len(report["journal_entries"]) == 6},
        {"fault": "amendment v2 before contract v1", "control": "per-aggregate sequencer",
         "caught": report["outcomes"].get("parked") == 1 and "parked" not in status["events"]},
        {"fault": "payload that is not JSON", "control": "kept raw + mapping_error",
         "caught": "invalid_json" in report["refused_at_intake"]
                   and "mapping_error" in classes and status["raw_events"].get("rejected") == 1},
        {"fault": "payment sent by the CRM", "control": "ownership map",
         "caught": "ownership_violation" in classes},
        {"fault": "whole log replayed", "control": "idempotency keys at the target",
         "caught": report["books_unchanged_by_replay"]},
    ]


def _print(report: dict[str, Any]) -> None:
    console = output.console
    console.rule("[bold]finsync demo: the reference workflow through the hub")
    console.print(f"work folder: {report['workdir']}  ({report['sent']} payloads sent)")
    output.counts_table("acceptance outcomes", report["outcomes"])
    output.table(f"milestones of amendment {report['amendment_correlation_id']}",
                 ["milestone", "system", "at"],
                 [[m["milestone"], m["system"], m["at"]] for m in report["amendment_timeline"]])
    output.counts_table("deliveries", report["status"]["deliveries"])
    console.print(f"duplicates ignored: {report['status']['duplicates_ignored']}")
    output.table("journal entries (embedded ledger)", ["date", "memo", "lines"],
                 [[e["date"], e["memo"], "\n".join(" ".join(ln) for ln in e["lines"])]
                  for e in report["journal_entries"]])
    for entity, rows in report["trial_balance"].items():
        if rows:
            output.table(f"trial balance {entity} at {AS_OF}", ["account", "balance"],
                         [[a, b] for a, b in rows.items()])
    console.print(f"replaying all {report['replay']['events']} events left the books "
                  f"{'unchanged' if report['books_unchanged_by_replay'] else 'CHANGED'}")
    output.table("injected faults", ["fault", "control", "caught"],
                 [[c["fault"], c["control"], "[green]yes[/]" if c["caught"] else "[red]NO[/]"]
                  for c in report["controls"]])
    output.table("exceptions", ["class", "status", "summary"],
                 [[e["class"], e["status"], e["summary"]] for e in report["exceptions"]])
