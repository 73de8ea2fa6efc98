"""What the transport needs to know, as plain values (`config` reads `[transport]`).

Rules:
- `kind = "inprocess"` (the default) runs everything in one process on the database;
  `"nats"` runs intake, archiver and partitioned workers over NATS JetStream (DESIGN §8).
- `namespace` prefixes every subject (`<ns>.raw.>`), names the streams (`<NS>_RAW`) and the
  KV buckets (`<ns>_leases`); it is lower case so that two namespaces never share a stream
  name once upper-cased, and subject- and bucket-safe (`[a-z0-9_-]`, a letter first).
- Every duration is in seconds (`_s`); JetStream keeps messages `retention_s` at most, and
  its duplicate window (`duplicate_window_s`, never longer than the retention) is where a
  resend with the same message id is dropped; the database de-duplicates beyond it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from finsync.domain.errors import DomainError

NAMESPACE = re.compile(r"[a-z][a-z0-9_-]{0,31}")
PARTITIONS_MAX = 4096
REPLICAS_MAX = 5  # JetStream's own limit on stream replicas


class TransportSettingsError(DomainError):
    code = "transport_settings"


@dataclass(frozen=True, slots=True)
class TransportSettings:
    kind: Literal["inprocess", "nats"] = "inprocess"
    servers: tuple[str, ...] = ("nats://127.0.0.1:4222",)
    namespace: str = "finsync"
    partitions: int = 16
    replicas: int = 3
    duplicate_window_s: float = 3600.0
    ack_wait_s: float = 30.0
    lease_ttl_s: float = 10.0
    max_deliver: int = -1  # -1: redeliver until acked (nothing is dropped silently)
    retention_s: float = 7 * 86400.0  # how long a stream keeps a message (disk is finite)

    def __post_init__(self) -> None:
        if NAMESPACE.fullmatch(self.namespace) is None:
            raise TransportSettingsError(
                f"transport namespace {self.namespace!r}: 1 to 32 of [a-z0-9_-], a letter first")
        if not 1 <= self.partitions <= PARTITIONS_MAX:
            raise TransportSettingsError(
                f"transport partitions {self.partitions}: 1 to {PARTITIONS_MAX}")
        if not 1 <= self.replicas <= REPLICAS_MAX:
            raise TransportSettingsError(f"transport replicas {self.replicas}: 1 to {REPLICAS_MAX}")
        if not self.servers:
            raise TransportSettingsError("transport servers: name at least one")
        if not 0 < self.duplicate_window_s <= self.retention_s:
            raise TransportSettingsError(
                f"transport duplicate_window_s {self.duplicate_window_s}: above 0 and at most "
                f"retention_s ({self.retention_s})")
        if self.ack_wait_s <= 0 or self.lease_ttl_s <= 0:
            raise TransportSettingsError("transport ack_wait_s and lease_ttl_s must be above 0")
        if self.max_deliver == 0 or self.max_deliver < -1:
            raise TransportSettingsError(
                f"transport max_deliver {self.max_deliver}: -1 (unlimited) or at least 1")

    def stream(self, suffix: str) -> str:
        """The stream `<NS>_<SUFFIX>`: `stream("raw")` is `FINSYNC_RAW`."""
        return f"{self.namespace.upper()}_{suffix.upper()}"

    def bucket(self, suffix: str) -> str:
        """The KV bucket `<ns>_<suffix>`: `bucket("leases")` is `finsync_leases`."""
        return f"{self.namespace}_{suffix.lower()}"
