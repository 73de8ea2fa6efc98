"""`finsync demo`: the reference workflow's event stream through the hub, with faults.

Until the embedded billing, ledger and revenue systems exist, the demo drives the hub with
the canonical example stream (examples/reference-workflow.jsonl) and delivers to the
file-drop ledger. It injects the faults the hub itself must catch: a duplicate webhook,
amendment versions out of order, a payload that is not JSON and a change from a system
that does not own it, then replays the whole log to show that nothing changes.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import tomllib
from pathlib import Path
from typing import Any

import finsync
from finsync.bootstrap import build_hub
from finsync.cli import output
from finsync.config import DEFAULT_CONFIG, FinsyncConfig, parse_config
from finsync.connectors.filedrop.ledger import FileDropLedger
from finsync.domain.errors import MappingError
from finsync.hub.replay import ReplayFilter
from finsync.hub.service import Hub


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
    ledger = FileDropLedger("ledger", config.resolve("var/exports"))
    posted = len(ledger.documents())
    replayed = hub.replay(ReplayFilter(everything=True))
    hub.run_until_idle()
    amendment = next(json.loads(line)["correlation_id"] for line in lines
                     if b'"contract.amended"' in line)
    report = {
        "workdir": str(workdir), "sent": len(lines) + 3, "refused_at_intake": refused,
        "outcomes": dict(first.outcomes), "status": hub.status(),
        "documents_posted": posted, "documents_after_replay": len(ledger.documents()),
        "replay": {"events": replayed.events, "deliveries_resent": replayed.requeued},
        "amendment_correlation_id": amendment,
        "amendment_timeline": [{"milestone": m["name"], "system": m["target"],
                                "at": m["recorded_at"].isoformat()}
                               for m in hub.timeline(amendment)],
        "exceptions": hub.exceptions(status=None),
    }
    report["controls"] = _controls(report, posted_keys=len({d["key"] for d in
                                                            ledger.documents()}))
    if as_json:
        output.emit_json(report)
    else:
        _print(report)
    return report


def _controls(report: dict[str, Any], posted_keys: int) -> list[dict[str, Any]]:
    """Each injected fault, the control that must catch it, and whether it did."""
    classes = [e["class"] for e in report["exceptions"]]
    status = report["status"]
    return [
        {"fault": "invoice webhook delivered twice", "control": "de-duplication",
         "caught": status["duplicates_ignored"] == 1 and posted_keys == report["documents_posted"]},
        {"fault": "amendment v2 before contract v1", "control": "per-aggregate sequencer",
         "caught": report["outcomes"].get("parked") == 1 and "parked" not in status["events"]},
        {"fault": "payload that is not JSON", "control": "kept raw + mapping_error",
         "caught": "invalid_json" in report["refused_at_intake"]
                   and "mapping_error" in classes and status["raw_events"].get("rejected") == 1},
        {"fault": "payment sent by the CRM", "control": "ownership map",
         "caught": "ownership_violation" in classes},
        {"fault": "whole log replayed", "control": "idempotency keys at the target",
         "caught": report["documents_after_replay"] == report["documents_posted"]},
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
    console.print(f"documents posted to the ledger: {report['documents_posted']}; after "
                  f"replaying all {report['replay']['events']} events: "
                  f"{report['documents_after_replay']}")
    output.table("injected faults", ["fault", "control", "caught"],
                 [[c["fault"], c["control"], "[green]yes[/]" if c["caught"] else "[red]NO[/]"]
                  for c in report["controls"]])
    output.table("exceptions", ["class", "status", "summary"],
                 [[e["class"], e["status"], e["summary"]] for e in report["exceptions"]])
