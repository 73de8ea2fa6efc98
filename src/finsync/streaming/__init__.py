"""The transport: in-process (the default) or NATS JetStream for scale-out (DESIGN §8).

`settings` and `subjects` are pure; `client` is the sync facade over nats-py, the only
package that imports it; `setup` makes the streams.
"""
