"""A lease on one key of `<ns>_leases`: what exactly one worker of the cluster does at a
time (`SINGLETONS`: the events-out relay, the hub's duties, the daily job).

Rules:
- Taken by `create` and renewed by `update` from the revision it holds; a lost CAS is a
  lost lease, at once. The bucket's TTL (`lease_ttl_s`) ends a lease its holder stopped
  renewing, so a killed holder is replaced within that time.
- A holder that finds its own name under the key (it restarted) takes it back at once.
- Released (a clean stop) by a delete from its own last revision, never another holder's.
"""

from __future__ import annotations

import contextlib

from finsync.streaming.client import KeyExistsError, KeyValue, WrongRevisionError

LEASES = "leases"  # the KV bucket `<ns>_leases`, shared with the partitions' leases
RELAY = "relay"  # events out (`streaming.events_out`)
# Raw events stored straight in the database accepted, embedded outboxes pumped, usage totals.
DUTIES = "duties"
DAILY = "daily"  # the daily job (reconciliation, audit checkpoint, purge), held invoices
SINGLETONS = (RELAY, DUTIES, DAILY)  # every singleton lease, as `cluster status` shows them


class SingletonLease:
    def __init__(self, kv: KeyValue, key: str, holder: str) -> None:
        self._kv = kv
        self.key = key
        self._holder = holder.encode()
        self._revision: int | None = None

    def hold(self) -> bool:
        """Take or renew the lease; False when another holds it."""
        if self._revision is not None:
            try:
                self._revision = self._kv.update(self.key, self._holder, self._revision)
                return True
            except WrongRevisionError:
                self._revision = None
        try:
            self._revision = self._kv.create(self.key, self._holder)
            return True
        except KeyExistsError:
            pass
        entry = self._kv.get(self.key)
        if entry is not None and entry.value == self._holder:
            try:
                self._revision = self._kv.update(self.key, self._holder, entry.revision)
                return True
            except WrongRevisionError:
                return False
        return False

    def release(self) -> None:
        """Give the lease up, so another takes over at once."""
        if self._revision is not None:
            with contextlib.suppress(WrongRevisionError):
                self._kv.delete(self.key, self._revision)
            self._revision = None
