"""The transport's typed errors, and the one place nats-py's errors are translated.

Rules:
- `TransportUnavailableError` (transient): no connection, no answer in time, no PubAck, no
  stream leader (JetStream answers 503 while it elects one, or while it has no quorum),
  too few nodes up to place a stream's replicas. A retry later can succeed; nothing may be
  claimed stored.
- `TransportRefusedError` (permanent): JetStream refused the request for a reason a retry
  does not change (a payload above the server's limit, a stream configured otherwise).
- `KeyExistsError` / `WrongRevisionError`: a KV write lost a race (`create` of a key that
  exists, `update` from a revision that is no longer the last). Expected outcomes of a
  lease, not failures of the transport.
- Bad input from the caller (a header that would break the message) is a `DomainError`.
- Anything else nats-py raises is a defect and propagates as it is.
"""

from __future__ import annotations

import nats.errors
import nats.js.errors

from finsync.domain.errors import (
    DomainError,
    ExceptionClass,
    FinsyncError,
    PermanentError,
    TransientError,
)

# nats-py's errors that mean "not now": the connection, the time, or a leader missing.
_UNAVAILABLE = (
    TimeoutError,  # nats.errors.TimeoutError and asyncio.TimeoutError are ones
    nats.errors.NoRespondersError,
    nats.errors.ConnectionClosedError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.ConnectionDrainingError,
    nats.errors.StaleConnectionError,
    nats.errors.OutboundBufferLimitError,
    nats.errors.NoServersError,
    nats.js.errors.NoStreamResponseError,
    nats.js.errors.TooManyStalledMsgsError,
    OSError,
)
NO_SUITABLE_PEERS = 10005
_SERVER_SIDE = (nats.js.errors.ServiceUnavailableError, nats.js.errors.ServerError)
_REFUSED = (
    nats.errors.MaxPayloadError,
    nats.errors.BadSubjectError,
    nats.errors.BadHeaderError,
    nats.js.errors.InvalidKeyError,
    nats.js.errors.InvalidBucketNameError,
)


class TransportUnavailableError(TransientError):
    code = "transport_unavailable"


class TransportRefusedError(PermanentError):
    code = "transport_refused"

    def __init__(self, message: str,
                 exception_class: ExceptionClass = ExceptionClass.INTERNAL_ERROR) -> None:
        # finsync built a message or a stream JetStream will not take: a defect to fix here
        super().__init__(message, exception_class=exception_class)


class BadMessageError(DomainError):
    """A message the caller built wrong: a header name or value that cannot travel."""

    code = "bad_message"


class KvConflictError(FinsyncError):
    code = "kv_conflict"


class KeyExistsError(KvConflictError):
    code = "kv_key_exists"


class WrongRevisionError(KvConflictError):
    code = "kv_wrong_revision"


def translate(exc: BaseException, what: str) -> FinsyncError | None:
    """The typed error for a nats-py error met doing `what`; None for a defect (re-raise)."""
    if isinstance(exc, nats.js.errors.APIError) and not isinstance(exc, _UNAVAILABLE):
        return _api_error(exc, what)
    if isinstance(exc, _UNAVAILABLE):
        return TransportUnavailableError(f"{what}: {_describe(exc)}")
    if isinstance(exc, _REFUSED):
        return TransportRefusedError(f"{what}: {_describe(exc)}")
    return None


def _api_error(exc: nats.js.errors.APIError, what: str) -> FinsyncError:
    # 503: no leader yet, or no quorum; 500: the server failed the request; 408: timeout.
    # (nats-py makes a 503 status message a ServiceUnavailableError without a code.)
    # 10005: no suitable peers to place the replicas on; while a node is down (restarting,
    # being replaced) there are too few, and once it is back there are enough. A cluster
    # smaller than `replicas` answers this for ever: the message says which.
    # nats-py's KV errors (KeyNotFoundError …) are APIErrors made without their fields.
    err_code, code = getattr(exc, "err_code", None), getattr(exc, "code", None)
    if isinstance(exc, _SERVER_SIDE) or err_code == NO_SUITABLE_PEERS or (
            code is not None and (code >= 500 or code == 408)):
        return TransportUnavailableError(f"{what}: {_describe(exc)}")
    return TransportRefusedError(f"{what}: {_describe(exc)}")


def _describe(exc: BaseException) -> str:
    text = str(exc) or exc.__class__.__name__
    return f"{exc.__class__.__name__}: {text}" if text != exc.__class__.__name__ else text
