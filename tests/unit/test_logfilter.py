"""finsync's log records carry no credential nor e-mail address, whatever the handler."""

from __future__ import annotations

import logging

import pytest

from finsync.hub import logfilter

TOKEN = "fsk_PLANTEDlogToken000000"


def test_records_of_finsync_loggers_are_redacted_at_creation(
        caplog: pytest.LogCaptureFixture) -> None:
    logfilter.install()
    logfilter.install()  # idempotent
    with caplog.at_level(logging.INFO):
        logging.getLogger("finsync.hub.intake").info("from %s with Bearer %s", "a@b.example",
                                                    TOKEN)
        logging.getLogger("finsync").warning("key sk_test_PLANTED00000000 refused")
    text = caplog.text + " ".join(r.getMessage() for r in caplog.records)
    assert TOKEN not in text and "a@b.example" not in text and "PLANTED" not in text
    assert "Bearer [redacted]" in text


def test_an_exception_text_is_redacted_too(caplog: pytest.LogCaptureFixture) -> None:
    logfilter.install()
    with caplog.at_level(logging.ERROR):
        try:
            raise RuntimeError(f"rejected whsec_PLANTEDsecret000 for {TOKEN}")
        except RuntimeError:
            logging.getLogger("finsync.hub.pipeline").exception("failed")
    assert "PLANTED" not in caplog.text
    assert "RuntimeError" in caplog.text


def test_other_libraries_records_are_left_alone(caplog: pytest.LogCaptureFixture) -> None:
    logfilter.install()
    with caplog.at_level(logging.INFO):
        logging.getLogger("elsewhere").info("mail a@b.example")
    assert "a@b.example" in caplog.text


def test_the_filter_alone_redacts_what_it_sees() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "token %s", (TOKEN,), None)
    assert logfilter.RedactingFilter().filter(record)
    assert record.getMessage() == "token [redacted]"
