"""Calls to the coordinator retry what may succeed later and raise a refusal at once."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest

from gpumarket.errors import (
    AuthenticationFailed,
    GpumarketError,
    InternalServerError,
    InvalidRequest,
    RateLimited,
    Unreachable,
    error_from_response,
)
from gpumarket.provider.retry import is_final, is_transient, policy, with_retry


def failing(*errors: GpumarketError) -> tuple[list[int], Callable[[], str]]:
    calls: list[int] = []

    def call() -> str:
        calls.append(1)
        if len(calls) <= len(errors):
            raise errors[len(calls) - 1]
        return "done"

    return calls, call


def test_transient_answers_are_retried() -> None:
    out_of_reach = error_from_response(503, {"detail": "down"})
    too_slow = error_from_response(408, {"detail": "body too slow"})
    calls, call = failing(out_of_reach, too_slow)
    assert with_retry(call, "report", first_delay=0.01) == "done"
    assert len(calls) == 3


def test_a_refusal_is_raised_at_once() -> None:
    refusal = InvalidRequest("the claim is over what the run allows")
    calls, call = failing(refusal)
    with pytest.raises(InvalidRequest):
        with_retry(call, "report", first_delay=0.01)
    assert len(calls) == 1


@pytest.mark.parametrize(
    ("status", "final"),
    [
        (400, True),
        (403, True),
        (409, True),
        (413, True),
        (422, True),
        (408, False),
        (429, False),
        (500, False),
        (502, False),
        (503, False),
    ],
)
def test_which_answers_are_final(status: int, final: bool) -> None:
    error = error_from_response(status, {"detail": "x"})
    assert is_final(error) is final
    assert is_transient(error) is not final


def test_an_unknown_key_is_not_final_the_daemon_registers_again() -> None:
    error = AuthenticationFailed("the API key is not valid")
    assert not is_final(error) and not is_transient(error)


def test_a_coordinator_bug_is_retried_by_the_daemon_unlike_the_sdk() -> None:
    """A 500 is not a refusal: the daemon repeats it (for a bounded time) rather than lose a
    run's result; the SDK raises it at once."""
    from gpumarket.sdk.retry import is_transient as sdk_is_transient

    bug = error_from_response(500, {"detail": "boom", "code": "internal"})
    assert isinstance(bug, InternalServerError)
    assert is_transient(bug) and not is_final(bug)
    assert not sdk_is_transient(bug)


def test_the_policy_raises_a_refusal_at_once_without_waiting() -> None:
    waits: list[float] = []
    calls, call = failing(InvalidRequest("the claim is over what the run allows"))
    with pytest.raises(InvalidRequest):
        policy("report").copy(sleep=waits.append)(call)
    assert len(calls) == 1 and waits == []


def test_the_policy_retries_an_outage_with_growing_waits_up_to_its_cap(
    caplog: pytest.LogCaptureFixture,
) -> None:
    waits: list[float] = []
    calls, call = failing(*(Unreachable("connection refused") for _ in range(7)))
    retrying = policy("report result", first_delay=0.5, max_delay=15.0).copy(sleep=waits.append)
    with caplog.at_level(logging.WARNING, logger="gpumarket.provider.retry"):
        assert retrying(call) == "done"
    assert len(calls) == 8
    bases = [0.5, 1, 2, 4, 8, 15, 15]  # doubling, then capped; jitter adds at most 0.5 under it
    assert all(base <= wait <= min(base + 0.5, 15) for base, wait in zip(bases, waits, strict=True))
    assert waits[:5] == sorted(waits[:5])
    assert [r.message.split(";")[0] for r in caplog.records] == [
        "report result failed (connection refused)"
    ] * 7


def test_the_policy_waits_as_long_as_retry_after_asks() -> None:
    waits: list[float] = []
    _, call = failing(RateLimited("slow down", retry_after=40))
    assert policy("poll", max_delay=30.0).copy(sleep=waits.append)(call) == "done"
    assert waits == [40.0]


def test_the_policy_gives_up_before_a_wait_past_its_limit() -> None:
    waits: list[float] = []
    calls, call = failing(Unreachable("first"), Unreachable("second"))
    with pytest.raises(Unreachable, match="first"):  # the first wait (>= 0.5 s) is too long
        policy("report", give_up_after=0.4).copy(sleep=waits.append)(call)
    assert len(calls) == 1 and waits == []


class StopsDuringTheWait:
    """A daemon's stop event that is set while the policy waits between two tries."""

    def __init__(self) -> None:
        self.waited: list[float] = []

    def is_set(self) -> bool:
        return bool(self.waited)

    def wait(self, timeout: float) -> bool:
        self.waited.append(timeout)
        return True


def test_a_daemon_asked_to_stop_is_not_kept_trying() -> None:
    stop = StopsDuringTheWait()
    calls, call = failing(Unreachable("first"), Unreachable("second"))
    with pytest.raises(Unreachable, match="first"):
        with_retry(call, "connect to the coordinator", stop=stop)  # type: ignore[arg-type]
    assert len(calls) == 1 and len(stop.waited) == 1


def test_without_a_stop_event_the_waits_go_through_pause(monkeypatch: pytest.MonkeyPatch) -> None:
    waits: list[float] = []
    monkeypatch.setattr("gpumarket.provider.retry.pause", waits.append)
    calls, call = failing(Unreachable("down"), error_from_response(503, {"detail": "down"}))
    assert with_retry(call, "report started") == "done"
    assert len(calls) == 3 and len(waits) == 2 and waits[0] < waits[1]
