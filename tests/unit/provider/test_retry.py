"""Calls to the coordinator retry what may succeed later and raise a refusal at once."""

from __future__ import annotations

import pytest

from gpumarket.errors import (
    AuthenticationFailed,
    GpumarketError,
    InvalidRequest,
    error_from_response,
)
from gpumarket.provider.retry import is_final, is_transient, with_retry


def failing(*errors: GpumarketError) -> tuple[list[int], object]:
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
    assert with_retry(call, "report", first_delay=0.01) == "done"  # type: ignore[arg-type]
    assert len(calls) == 3


def test_a_refusal_is_raised_at_once() -> None:
    refusal = InvalidRequest("the claim is over what the run allows")
    calls, call = failing(refusal)
    with pytest.raises(InvalidRequest):
        with_retry(call, "report", first_delay=0.01)  # type: ignore[arg-type]
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
