"""The hub's tables. Money is stored as integer minor units plus the currency code.

Uniqueness carries the guarantees: a source event is stored once per `(source,
source_event_id)`, a business key once, a delivery once per delivery key (`event_id:target`),
a consumer's effect once per `(consumer, key)`, a cross-reference once per system.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

from finsync.dbtypes import NAMING_CONVENTION, Serial, UtcDateTime

metadata = MetaData(naming_convention=NAMING_CONVENTION)

raw_events = Table(
    "raw_events", metadata,
    Column("id", Serial, primary_key=True, autoincrement=True),
    Column("source", String(64), nullable=False),
    Column("received_at", UtcDateTime, nullable=False),
    Column("content_type", String(128)),
    Column("headers", Text, nullable=False),
    Column("body", LargeBinary, nullable=False),
    Column("status", String(16), nullable=False),  # status.RawStatus
    Column("error_code", String(64)),
    Column("error_detail", Text),
    Column("processed_at", UtcDateTime),
    # sha256 of the body: identical refused bodies are stored once and counted (`refusals`).
    Column("body_sha256", String(64)),
    Column("refusals", Integer, nullable=False, server_default="0"),
    # The JetStream message it came in (`finsync.streaming`): stored once, however often
    # the archiver is handed it.
    Column("transport_id", String(255)),
    Index("ix_raw_events_status_id", "status", "id"),
    Index("ux_raw_events_transport_id", "transport_id", unique=True),
    Index("ix_raw_events_source_body_sha256", "source", "body_sha256"),
)

events = Table(
    "events", metadata,
    Column("position", Serial, primary_key=True, autoincrement=True),
    Column("event_id", String(64), nullable=False, unique=True),
    Column("type", String(64), nullable=False),
    Column("schema_version", Integer, nullable=False),
    Column("source", String(64), nullable=False),
    Column("source_event_id", String(255), nullable=False),
    Column("business_key", String(255), unique=True),
    Column("occurred_at", UtcDateTime, nullable=False),
    Column("received_at", UtcDateTime, nullable=False),
    Column("correlation_id", String(255), nullable=False, index=True),
    Column("causation_id", String(255)),
    Column("aggregate_type", String(64), nullable=False),
    Column("aggregate_id", String(255), nullable=False),
    Column("aggregate_version", Integer),
    Column("payload", Text, nullable=False),
    Column("payload_hash", String(64), nullable=False),
    Column("raw_event_id", BigInteger, ForeignKey("raw_events.id")),
    Column("status", String(16), nullable=False),  # status.EventStatus
    Column("status_changed_at", UtcDateTime, nullable=False),
    UniqueConstraint("source", "source_event_id"),
    Index("ix_events_aggregate", "aggregate_type", "aggregate_id", "aggregate_version"),
    Index("ix_events_status", "status"),
)

aggregate_cursors = Table(
    "aggregate_cursors", metadata,
    Column("aggregate_type", String(64), nullable=False),
    Column("aggregate_id", String(255), nullable=False),
    Column("applied_version", Integer, nullable=False),
    PrimaryKeyConstraint("aggregate_type", "aggregate_id"),
)

duplicates = Table(
    "duplicates", metadata,
    Column("id", Serial, primary_key=True, autoincrement=True),
    Column("raw_event_id", BigInteger, ForeignKey("raw_events.id")),
    Column("source", String(64), nullable=False),
    Column("source_event_id", String(255), nullable=False),
    Column("duplicate_of", String(64), nullable=False),
    Column("reason", String(32), nullable=False),
    Column("detected_at", UtcDateTime, nullable=False),
)

_PENDING = text("status = 'pending'")

deliveries = Table(
    "deliveries", metadata,
    Column("id", Serial, primary_key=True, autoincrement=True),
    Column("event_id", String(64), ForeignKey("events.event_id"), nullable=False, index=True),
    Column("target", String(64), nullable=False),
    Column("delivery_key", String(255), nullable=False, unique=True),
    Column("partition_key", String(255), nullable=False),
    Column("correlation_id", String(255), nullable=False, index=True),
    Column("status", String(16), nullable=False),  # status.DeliveryStatus
    Column("attempts", Integer, nullable=False),
    # Leases that ran out before an outcome was recorded (a worker that died mid-call).
    Column("lease_expiries", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", UtcDateTime, nullable=False),
    Column("lease_owner", String(64)),
    Column("lease_expires_at", UtcDateTime),
    Column("last_error", Text),
    Column("result", Text),
    # What triage changed for the next attempt (e.g. {"posting_date": "2026-04-01"}).
    Column("override", Text),
    Column("created_at", UtcDateTime, nullable=False),
    Column("completed_at", UtcDateTime),
    # The legal entity of the event (an ERP lane) and a stable hash of `partition_key`
    # (`domain.partition.partition_hash`): a worker claims `partition_hash % partitions`.
    Column("lane", String(64)),
    Column("partition_hash", BigInteger),
    Index("ix_deliveries_due", "status", "next_attempt_at"),
    Index("ix_deliveries_partition", "target", "partition_key", "id"),
    # A claim walks the pending deliveries of a target in id order and stops at its limit.
    Index("ix_deliveries_pending", "target", "id", postgresql_where=_PENDING,
          sqlite_where=_PENDING),
)

cross_refs = Table(
    "cross_refs", metadata,
    Column("canonical_id", String(255), nullable=False),
    Column("object_type", String(64), nullable=False),
    Column("system", String(64), nullable=False),
    Column("external_id", String(255), nullable=False),
    Column("event_id", String(64)),
    Column("created_at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("canonical_id", "system"),
    UniqueConstraint("system", "object_type", "external_id"),
)

consumer_tracking = Table(
    "consumer_tracking", metadata,
    Column("consumer", String(64), nullable=False),
    Column("key", String(255), nullable=False),
    Column("body_hash", String(64), nullable=False),
    Column("result", Text, nullable=False),
    Column("recorded_at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("consumer", "key"),
)

exceptions = Table(
    "exceptions", metadata,
    Column("id", Serial, primary_key=True, autoincrement=True),
    Column("class", String(32), nullable=False, index=True),
    Column("status", String(24), nullable=False, index=True),  # status.ExceptionStatus
    Column("fingerprint", String(255), nullable=False, unique=True),
    Column("amount_minor", BigInteger),
    Column("currency", String(3)),
    Column("correlation_id", String(255), index=True),
    Column("objects", Text, nullable=False),
    Column("event_id", String(64)),
    Column("raw_event_id", BigInteger),
    Column("delivery_id", BigInteger),
    Column("summary", Text, nullable=False),
    Column("detail", Text),
    Column("opened_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("resolved_at", UtcDateTime),
    Column("resolution_note", Text),
    # How many times the same problem was seen (refusals aggregate per source and cause).
    Column("occurrences", Integer, nullable=False, server_default="1"),
)

milestones = Table(
    "milestones", metadata,
    Column("id", Serial, primary_key=True, autoincrement=True),
    Column("correlation_id", String(255), nullable=False, index=True),
    Column("name", String(64), nullable=False),
    Column("event_id", String(64), nullable=False),
    Column("target", String(64), nullable=False),
    Column("recorded_at", UtcDateTime, nullable=False),
    UniqueConstraint("correlation_id", "name", "event_id", "target"),
)

# Every action on an exception: who asked, why, who approved (never the same person for a
# material correction), and when it was carried out.
triage_actions = Table(
    "triage_actions", metadata,
    Column("id", Serial, primary_key=True, autoincrement=True),
    Column("exception_id", BigInteger, ForeignKey("exceptions.id"), nullable=False, index=True),
    Column("action", String(16), nullable=False),  # retry | replay | reroute | resolve | ignore
    Column("params", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("requested_by", String(128), nullable=False),
    Column("requested_at", UtcDateTime, nullable=False),
    # pending_approval | approved | rejected | done
    Column("status", String(24), nullable=False),
    Column("decided_by", String(128)),
    Column("decided_at", UtcDateTime),
    Column("decision_note", Text),
)

# One row per reconciliation run and entity; the items are kept as JSON (they are read
# whole, per run), the variances as columns for trends and metrics.
recon_runs = Table(
    "recon_runs", metadata,
    Column("id", Serial, primary_key=True, autoincrement=True),
    Column("legal_entity", String(64), nullable=False),
    Column("as_of", Date, nullable=False),
    Column("run_at", UtcDateTime, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("total_variance_minor", BigInteger, nullable=False),
    Column("breaks", Integer, nullable=False),
    Column("checks", Text, nullable=False),
    Index("ix_recon_runs_entity_as_of", "legal_entity", "as_of"),
)

# Which deliveries a summary journal covers (the posting buffer's daily summaries), written
# before the summary goes to the ERP; a delivery belongs to one summary at a time.
summary_members = Table(
    "summary_members", metadata,
    Column("summary_key", String(200), nullable=False, index=True),
    Column("delivery_id", BigInteger, primary_key=True, autoincrement=False),
    Column("document_id", String(200), nullable=False),
)

# The ERP posting budget every worker process shares (`storage.posting_budget`). Per target:
# a `minute` row (window_start 0) is the calls-per-minute token bucket and the ERP's own
# pause (retry-after); a `day` row per UTC day (window_start: the day's first second, epoch)
# counts the calls made that day against the daily cap.
posting_budget = Table(
    "posting_budget", metadata,
    Column("target", String(64), nullable=False),
    Column("window", String(8), nullable=False),  # minute | day
    Column("window_start", BigInteger, nullable=False),
    Column("calls", BigInteger, nullable=False),
    Column("tokens", Float),
    Column("refilled_at_s", Float),
    Column("paused_until_s", Float),
    PrimaryKeyConstraint("target", "window", "window_start"),
)

# An ERP's concurrency slots, leased: a call holds one; a holder that dies leaves a lease
# that runs out, and the slot is free again.
posting_slots = Table(
    "posting_slots", metadata,
    Column("target", String(64), nullable=False),
    Column("slot", Integer, nullable=False),
    Column("holder", String(128)),
    Column("expires_at", UtcDateTime),
    PrimaryKeyConstraint("target", "slot"),
)

# Where the events-out relay of each namespace (`streaming.events_out`) has got to in the
# event log (`log` "events", by position) and the milestone log ("milestones", by id):
# everything at or below `position` is published, or known never to need it.
relay_cursors = Table(
    "relay_cursors", metadata,
    Column("relay", String(64), nullable=False),
    Column("log", String(16), nullable=False),
    Column("position", BigInteger, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("relay", "log"),
)

# Events the relay passed before they were accepted (parked, or a changed body finance may
# still choose): published once they are, forgotten once they cannot be.
relay_waiting = Table(
    "relay_waiting", metadata,
    Column("relay", String(64), nullable=False),
    Column("position", BigInteger, nullable=False),
    Column("since", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("relay", "position"),
)
