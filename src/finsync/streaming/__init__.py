"""The transport: in-process (the default) or NATS JetStream for scale-out (DESIGN §8).

`settings` and `subjects` are pure; `client` is the sync facade over nats-py (the only
package that imports it, on a private loop thread); `setup` makes the streams.

How the rest of finsync uses it:
- One `JetStream(settings, name)` per process (never across a fork); `ensure_streams` at
  start. Any thread may publish, fetch and ack through it.
- Publish with a message id derived from the source (`subjects.raw_msg_id`, `raw:<id>`):
  a `PubAck` means stored on a quorum; `TransportUnavailableError` means not known to be
  stored, so send again later with the same id (a duplicate is acked, stored once).
- Consume with a durable pull consumer: `fetch`, commit the effects, then ack (`ack_all`
  for a batch). A message not acked within `ack_wait` comes back (`num_delivered` > 1);
  the effects must be idempotent. `fetch` returns [] when nothing came, including while a
  node is lost and the consumer elects a leader.
- Leases: a KV bucket with a TTL; `create` to take a key, `update` from the revision you
  hold to renew, `delete(key, last_revision=…)` to release. `KeyExistsError` and
  `WrongRevisionError` mean another process holds it.
"""
