"""A JetStream key-value bucket, sync, with its races as typed errors (leases build on it).

Rules:
- Every write returns the key's new revision. `create` succeeds only where the key has no
  value (never set, deleted, or expired by the bucket's TTL, also when it expires while the
  create is under way), else `KeyExistsError`;
  `update` and a `delete` given `last_revision` succeed only from the key's last revision,
  else `WrongRevisionError`. Two processes racing for a key: exactly one wins.
- Reads go to the stream leader (no direct get from a replica that may lag), so a reader
  sees every write acknowledged before it asked.
- A bucket made with a TTL forgets a key that long after its last write: a lease that is
  not renewed lapses by itself.
- `entries` (and `keys`) read the subjects the bucket's stream holds, then each one's last
  value: a deleted key's marker holds its subject but no value. nats-py's own `keys()` is
  not used: each call leaves a watcher's consumer on the server for 5 minutes (a worker's
  every lease round made one, until the stream refused more: "maximum consumers"), and
  its watcher can answer none for a bucket that has keys (a message delivered before it
  read its consumer info, not yet handled).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import nats.js.errors

from finsync.streaming.errors import KeyExistsError, WrongRevisionError

if TYPE_CHECKING:
    from nats.js.client import JetStreamContext
    from nats.js.kv import KeyValue as NatsKeyValue

    from finsync.streaming.loop import EventLoopThread

KV_TIMEOUT_S = 5.0
_WRONG_LAST_SEQUENCE = (10071, 10164)  # JetStream's err_codes for a stale expected revision


@dataclass(frozen=True, slots=True)
class KvEntry:
    key: str
    value: bytes
    revision: int


class KeyValue:
    def __init__(self, loop: EventLoopThread, kv: NatsKeyValue, bucket: str,
                 js: JetStreamContext) -> None:
        self._loop = loop
        self._kv = kv
        self._js = js
        self.bucket = bucket

    def get(self, key: str) -> KvEntry | None:
        """The key's value and revision; None when it has none (or was deleted)."""
        return self._loop.run(self._get(key), KV_TIMEOUT_S, self._what("get", key))

    def create(self, key: str, value: bytes) -> int:
        return self._loop.run(self._create(key, value), KV_TIMEOUT_S, self._what("create", key))

    def update(self, key: str, value: bytes, last_revision: int) -> int:
        return self._loop.run(self._update(key, value, last_revision), KV_TIMEOUT_S,
                              self._what("update", key))

    def put(self, key: str, value: bytes) -> int:
        return self._loop.run(self._kv.put(key, value), KV_TIMEOUT_S, self._what("put", key))

    def delete(self, key: str, last_revision: int | None = None) -> None:
        """Deletes the key; with `last_revision`, only if that is still its revision."""
        self._loop.run(self._delete(key, last_revision), KV_TIMEOUT_S,
                       self._what("delete", key))

    def keys(self) -> list[str]:
        """The keys that hold a value now, sorted."""
        return [entry.key for entry in self.entries()]

    def entries(self) -> list[KvEntry]:
        """The keys that hold a value now, with their values, sorted by key."""
        return self._loop.run(self._entries(), KV_TIMEOUT_S, f"entries of KV {self.bucket}")

    async def _get(self, key: str) -> KvEntry | None:
        try:
            entry = await self._kv.get(key)
        except nats.js.errors.KeyNotFoundError:  # KeyDeletedError is one
            return None
        return KvEntry(key, entry.value or b"", entry.revision or 0)

    async def _create(self, key: str, value: bytes) -> int:
        try:
            try:
                return await self._kv.create(key, value)
            except nats.js.errors.KeyNotFoundError:
                # nats-py's create, refused because the key has a value, reads the key to
                # tell a deleted one (which it then overwrites) from a live one; when that
                # value's TTL ran out between the two requests (a lapsed lease taken over),
                # the read finds nothing and the client raises this. The key is free now.
                return await self._kv.create(key, value)
        except nats.js.errors.KeyWrongLastSequenceError as exc:
            raise KeyExistsError(f"KV {self.bucket}: {key!r} already has a value") from exc

    async def _update(self, key: str, value: bytes, last_revision: int) -> int:
        try:
            return await self._kv.update(key, value, last=last_revision)
        except nats.js.errors.KeyWrongLastSequenceError as exc:
            raise WrongRevisionError(
                f"KV {self.bucket}: {key!r} is no longer at revision {last_revision}") from exc

    async def _delete(self, key: str, last_revision: int | None) -> None:
        try:
            await self._kv.delete(key, last=last_revision)
        except nats.js.errors.APIError as exc:
            if exc.err_code not in _WRONG_LAST_SEQUENCE:
                raise
            raise WrongRevisionError(
                f"KV {self.bucket}: {key!r} is no longer at revision {last_revision}") from exc

    async def _entries(self) -> list[KvEntry]:
        prefix = f"$KV.{self.bucket}."
        info = await self._js.stream_info(f"KV_{self.bucket}", subjects_filter=f"{prefix}>")
        found = [await self._get(subject[len(prefix):])
                 for subject in sorted(info.state.subjects or {})]
        return [entry for entry in found if entry is not None]

    def _what(self, verb: str, key: str) -> str:
        return f"{verb} {key!r} in KV {self.bucket}"
