"""A pipeline's outage: exponential, jittered waits; one WARNING when it begins and one INFO when
it ends; no traceback for a dependency out of reach; a bug still logged as one."""

from __future__ import annotations

import logging

import pytest
import requests
from sqlalchemy.exc import OperationalError

from gpumarket.coordinator.background.backoff import OutageBackoff, describe, is_transient
from gpumarket.errors import InvalidRequest, SettlementError, Unreachable

LOG = logging.getLogger("test.backoff")


def refused() -> requests.ConnectionError:
    """What web3's HTTP provider raises when the RPC endpoint's port is closed."""
    return requests.ConnectionError(
        "HTTPConnectionPool(host='127.0.0.1', port=8545): Max retries exceeded "
        "(Caused by NewConnectionError('[Errno 111] Connection refused'))"
    )


def wrapped(cause: BaseException) -> SettlementError:
    try:
        raise SettlementError("could not send") from cause
    except SettlementError as exc:
        return exc


def server_error(status: int) -> requests.HTTPError:
    response = requests.Response()
    response.status_code = status
    return requests.HTTPError(f"{status}", response=response)


@pytest.mark.parametrize(
    "exc",
    [
        refused(),
        requests.ReadTimeout("read timed out"),
        ConnectionRefusedError(111, "Connection refused"),
        TimeoutError(),
        Unreachable("the chain's RPC endpoint is unreachable"),
        wrapped(refused()),
        server_error(502),
        OperationalError("SELECT 1", {}, Exception("server closed"), connection_invalidated=True),
    ],
)
def test_an_unreachable_dependency_is_transient(exc: BaseException) -> None:
    assert is_transient(exc)


@pytest.mark.parametrize(
    "exc",
    [
        ValueError("a bug"),
        InvalidRequest("bad claim"),
        server_error(400),
        OperationalError("SELECT 1", {}, Exception("database is locked")),
    ],
)
def test_a_bug_or_a_refusal_is_not_transient(exc: BaseException) -> None:
    assert not is_transient(exc)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_waits_double_up_to_the_cap_with_jitter_in_the_lower_half() -> None:
    asked: list[tuple[float, float]] = []

    def rng(lo: float, hi: float) -> float:
        asked.append((lo, hi))
        return hi  # the top of the jitter range: the undisturbed schedule

    outage = OutageBackoff("chain", 1.0, LOG, max_delay=10.0, rng=rng)
    waits = [outage.failed(refused()) for _ in range(6)]
    assert waits == [2.0, 4.0, 8.0, 10.0, 10.0, 10.0]
    assert set(asked) == {(0.5, 1.0)}
    low = OutageBackoff("chain", 1.0, LOG, max_delay=10.0, rng=lambda lo, hi: lo)
    assert low.failed(refused()) == 1.0


def test_an_outage_logs_one_warning_without_traceback_and_one_info_on_recovery(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    outage = OutageBackoff("chain", 0.2, LOG, clock=clock, rng=lambda lo, hi: hi)
    caplog.set_level(logging.DEBUG, logger=LOG.name)
    for _ in range(50):
        assert outage.failed(refused()) > 0
        clock.now += 1.0
    outage.succeeded()
    outage.succeeded()  # a second good tick says nothing more

    records = [r for r in caplog.records if r.name == LOG.name]
    assert [r.levelno for r in records] == [logging.WARNING, logging.INFO]
    warning, info = records
    assert warning.exc_info is None and "Connection refused" in warning.getMessage()
    assert "chain" in warning.getMessage() and "backoff" in warning.getMessage()
    assert info.getMessage() == "background pipeline chain recovered after 50.0s (50 failed tries)"
    assert not outage.in_outage


def test_after_recovery_a_new_outage_starts_from_the_shortest_wait_and_warns_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    outage = OutageBackoff("chain", 1.0, LOG, rng=lambda lo, hi: hi)
    caplog.set_level(logging.INFO, logger=LOG.name)
    for _ in range(4):
        outage.failed(refused())
    outage.succeeded()
    assert outage.failed(refused()) == 2.0
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2


def test_a_bug_that_keeps_failing_backs_off_and_keeps_its_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    outage = OutageBackoff("chain", 1.0, LOG, rng=lambda lo, hi: hi)
    caplog.set_level(logging.DEBUG, logger=LOG.name)
    waits = [outage.failed(ValueError("a bug")) for _ in range(3)]
    assert waits == [2.0, 4.0, 8.0]  # not every tick: the same bug fails the same way
    assert not outage.in_outage  # no dependency is out of reach
    assert [r.levelname for r in caplog.records] == ["ERROR"] * 3
    assert all(r.exc_info is not None for r in caplog.records)
    outage.succeeded()
    assert outage.failed(ValueError("a bug")) == 2.0  # a new streak starts short again
    assert len(caplog.records) == 4  # and recovering from a bug says nothing more


def test_describe_keeps_one_short_line() -> None:
    text = describe(ValueError("line one\nline two " + "x" * 1000), limit=60)
    assert "\n" not in text and len(text) <= len("ValueError: ") + 60
    assert text.startswith("ValueError: line one line two") and text.endswith("...")
