"""The SDK's retry policies: what is tried again, how long it waits, and what is raised at
once. Nothing here really sleeps: the policies' ``sleep`` records the waits instead."""

from __future__ import annotations

from collections.abc import Callable, Generator

import httpx
import pytest
from tenacity import RetryCallState

from gpumarket.errors import (
    Conflict,
    InternalServerError,
    NotFound,
    RateLimited,
    Unreachable,
    WaitTimedOut,
    error_from_response,
)
from gpumarket.protocol import JobState
from gpumarket.sdk.retry import backoff, is_transient, polling, resuming
from tests.unit.sdk.conftest import Replay, job


def failing(*errors: BaseException) -> tuple[list[int], Callable[[], str]]:
    """A call that raises ``errors`` in turn, then answers "done"; and the list of its calls."""
    calls: list[int] = []

    def call() -> str:
        calls.append(1)
        if len(calls) <= len(errors):
            raise errors[len(calls) - 1]
        return "done"

    return calls, call


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (Unreachable("connection refused"), True),
        (httpx.ConnectError("refused"), True),
        (httpx.ReadTimeout("slow"), True),
        (error_from_response(502, {"detail": "bad gateway"}), True),
        (error_from_response(503, {"detail": "down"}), True),
        (error_from_response(504, {"detail": "gateway timeout"}), True),
        (error_from_response(408, {"detail": "body too slow"}), True),
        (error_from_response(429, {"detail": "slow down"}), True),
        (error_from_response(500, {"detail": "bug", "code": "internal"}), False),
        (error_from_response(500, {"detail": "bug"}), False),
        (error_from_response(400, {"detail": "no"}), False),
        (error_from_response(401, {"detail": "who"}), False),
        (error_from_response(403, {"detail": "no"}), False),
        (error_from_response(404, {"detail": "none", "code": "not_found"}), False),
        (error_from_response(409, {"detail": "no"}), False),
        (error_from_response(422, {"detail": "no"}), False),
        (ValueError("a bug of ours"), False),
    ],
)
def test_which_failures_are_worth_another_try(error: BaseException, transient: bool) -> None:
    assert is_transient(error) is transient


def test_a_refusal_is_raised_at_once() -> None:
    waits: list[float] = []
    calls, call = failing(NotFound("no such job"))
    with pytest.raises(NotFound):
        resuming(60).copy(sleep=waits.append)(call)
    assert len(calls) == 1 and waits == []


def test_a_coordinator_bug_is_raised_at_once() -> None:
    waits: list[float] = []
    calls, call = failing(InternalServerError("boom"))
    with pytest.raises(InternalServerError):
        resuming(60).copy(sleep=waits.append)(call)
    assert len(calls) == 1 and waits == []


def test_a_transient_failure_is_tried_again_with_growing_waits_up_to_the_cap() -> None:
    waits: list[float] = []
    calls, call = failing(*(Unreachable("connection refused") for _ in range(6)))
    assert resuming(60, first=0.5, most=5).copy(sleep=waits.append)(call) == "done"
    assert len(calls) == 7
    bases = [0.5, 1, 2, 4, 5, 5]  # doubling, then capped; jitter adds at most 0.5 below it
    assert all(base <= wait <= min(base + 0.5, 5) for base, wait in zip(bases, waits, strict=True))
    assert waits[:4] == sorted(waits[:4])


def test_the_last_failure_is_raised_once_the_outage_outlasts_the_limit() -> None:
    waits: list[float] = []
    errors = [Unreachable(f"refused {n}") for n in range(50)]
    _, call = failing(*errors)
    with pytest.raises(Unreachable, match="refused 0"):  # 0 s: gives up after the first
        resuming(0).copy(sleep=waits.append)(call)
    assert waits == []


def test_retry_after_is_honoured_and_may_exceed_the_cap() -> None:
    waits: list[float] = []
    _, call = failing(RateLimited("slow down", retry_after=12))
    assert resuming(60, most=5).copy(sleep=waits.append)(call) == "done"
    assert waits == [12.0]


def test_backoff_never_goes_over_its_cap() -> None:
    wait = backoff(1.0, 3.0)
    state = RetryCallState(retry_object=resuming(60), fn=None, args=(), kwargs={})
    for attempt in range(1, 40):
        state.attempt_number = attempt
        assert 1.0 <= wait(state) <= 3.0


def test_polling_waits_grow_by_half_up_to_the_most() -> None:
    waits: list[float] = []
    answers = iter(["QUEUED"] * 8 + ["RUNNING"])
    policy = polling(lambda state: state == "RUNNING", first=0.5, most=2.0)
    assert policy.copy(sleep=waits.append)(lambda: next(answers)) == "RUNNING"
    assert waits == [0.5, 0.75, 1.125, 1.6875, 2.0, 2.0, 2.0, 2.0]


def test_wait_asks_a_failing_coordinator_once(replay: Replay) -> None:
    sdk, asked = replay([httpx.Response(500, json={"detail": "boom", "code": "internal"})])
    with pytest.raises(InternalServerError):
        sdk.wait("job_1")
    assert len(asked) == 1


def test_wait_rides_out_a_rate_limit(replay: Replay) -> None:
    sdk, asked = replay(
        [
            httpx.Response(429, json={"detail": "slow down", "code": "rate_limited"}),
            httpx.Response(200, json=job("COMMITTED")),
        ]
    )
    assert sdk.wait("job_1").state is JobState.COMMITTED
    assert len(asked) == 2


def test_wait_says_when_the_job_can_never_get_there(replay: Replay) -> None:
    sdk, _ = replay([httpx.Response(200, json=job("FAILED"))])
    with pytest.raises(Conflict, match="ended FAILED and will never be RUNNING"):
        sdk.wait("job_1", [JobState.RUNNING])


def test_wait_times_out_on_a_job_that_stays_put(
    replay: Replay, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = iter(range(0, 10_000))
    monkeypatch.setattr("gpumarket.sdk.client.time.monotonic", lambda: next(clock))
    sdk, _ = replay([httpx.Response(200, json=job("RUNNING")) for _ in range(100)])
    with pytest.raises(WaitTimedOut, match="still RUNNING after 10 s"):
        sdk.wait("job_1", timeout=10)


def test_wait_times_out_on_a_coordinator_away_past_the_timeout(
    replay: Replay, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = iter(range(0, 10_000))
    monkeypatch.setattr("gpumarket.sdk.client.time.monotonic", lambda: next(clock))
    sdk, _ = replay([httpx.ConnectError("refused") for _ in range(100)])
    with pytest.raises(WaitTimedOut, match="did not answer before 10 s"):
        sdk.wait("job_1", timeout=10)


def test_a_followed_log_of_a_job_that_is_not_there_is_not_retried(replay: Replay) -> None:
    sdk, asked = replay([httpx.Response(404, json={"detail": "no job", "code": "not_found"})])
    with pytest.raises(NotFound):
        list(sdk.follow_logs("job_1"))
    assert asked == ["-1"]


def test_a_followed_log_can_be_left_early(replay: Replay) -> None:
    line = b'{"seq": 0, "stream": "stdout", "data": "x", "at": "2024-01-01T00:00:00Z"}\n'
    sdk, _ = replay([httpx.Response(200, content=line * 3)])
    follow = sdk.follow_logs("job_1")
    assert isinstance(follow, Generator)
    assert next(follow).seq == 0
    follow.close()  # the consumer stops: no error, nothing asked again


def test_errors_that_are_not_the_projects_are_not_retried() -> None:
    waits: list[float] = []
    calls, call = failing(KeyError("bug"))
    with pytest.raises(KeyError):
        resuming(60).copy(sleep=waits.append)(call)
    assert len(calls) == 1
