"""nats-py's errors become finsync's typed transport errors at one place
(`finsync.streaming.errors.translate`): what a retry can fix is transient, what it cannot
is permanent, and anything else is a defect left as it is."""

from __future__ import annotations

import nats.errors
import nats.js.errors
import pytest

from finsync.domain.errors import PermanentError, TransientError
from finsync.streaming.errors import (
    TransportRefusedError,
    TransportUnavailableError,
    translate,
)


@pytest.mark.parametrize("exc", [
    nats.errors.TimeoutError(),
    TimeoutError(),
    nats.errors.NoRespondersError(),
    nats.errors.ConnectionClosedError(),
    nats.errors.ConnectionReconnectingError(),
    nats.errors.NoServersError(),
    nats.errors.OutboundBufferLimitError(),
    ConnectionRefusedError(),
    nats.js.errors.NoStreamResponseError(),
    nats.js.errors.ServiceUnavailableError(),  # a 503 status message carries no code
    nats.js.errors.ServiceUnavailableError(code=503, err_code=10008),
    nats.js.errors.ServerError(code=500),
    nats.js.errors.APIError(code=408),
    nats.js.errors.BadRequestError(code=400, err_code=10005,
                                   description="no suitable peers for placement"),
], ids=lambda exc: exc.__class__.__name__)
def test_what_a_retry_can_fix_is_transport_unavailable(exc: Exception) -> None:
    typed = translate(exc, "publish to x")
    assert isinstance(typed, TransportUnavailableError)
    assert isinstance(typed, TransientError)
    assert str(typed).startswith("publish to x: ")


@pytest.mark.parametrize("exc", [
    nats.errors.MaxPayloadError(),
    nats.errors.BadSubjectError(),
    nats.js.errors.InvalidKeyError(),
    nats.js.errors.NotFoundError(code=404, err_code=10059, description="stream not found"),
    nats.js.errors.BadRequestError(code=400, err_code=10058,
                                   description="stream name already in use"),
    nats.js.errors.KeyNotFoundError(),  # made without an APIError's fields
    nats.js.errors.KeyDeletedError(),
], ids=lambda exc: exc.__class__.__name__)
def test_what_a_retry_cannot_fix_is_transport_refused(exc: Exception) -> None:
    typed = translate(exc, "stream X")
    assert isinstance(typed, TransportRefusedError)
    assert isinstance(typed, PermanentError)


def test_a_defect_is_not_translated() -> None:
    assert translate(KeyError("x"), "get") is None
    assert translate(nats.errors.MsgAlreadyAckdError(), "ack") is None
