"""A coordinator that fails on a request (HTTP 500) is reported at once as an
InternalServerError, not taken for an outage: the SDK's waits and log streams, which ride out
an unreachable coordinator, do not repeat a request that fails the same way every time. A
gateway's 502-504 is still an outage worth waiting out."""

from __future__ import annotations

import httpx
import pytest

from gpumarket.errors import InternalServerError, Unreachable
from gpumarket.protocol import JobState
from gpumarket.sdk import Client
from tests.unit.sdk.conftest import Replay, job

INTERNAL = {
    "detail": "internal error in the coordinator; the operator's log has the details",
    "code": "internal",
}


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(500, json=INTERNAL),  # the coordinator's own answer
        httpx.Response(500, text="Internal Server Error"),  # a bare one, from whatever
    ],
)
def test_a_500_is_an_internal_error_not_an_unreachable_coordinator(
    answer: httpx.Response,
) -> None:
    transport = httpx.MockTransport(lambda request: answer)
    with (
        Client("http://coordinator", "key", transport=transport) as client,
        pytest.raises(InternalServerError) as raised,
    ):
        client.get("job_1")
    assert not isinstance(raised.value, Unreachable)
    assert raised.value.status_code == 500


def test_wait_does_not_repeat_a_request_the_coordinator_fails(replay: Replay) -> None:
    sdk, asked = replay(
        [
            httpx.Response(200, json=job("RUNNING")),
            httpx.Response(500, json=INTERNAL),
            httpx.Response(200, json=job("COMMITTED")),  # never asked for
        ]
    )
    with pytest.raises(InternalServerError, match="internal error in the coordinator"):
        sdk.wait("job_1")
    assert len(asked) == 2


def test_wait_still_rides_out_a_gateway_answering_for_a_restarting_coordinator(
    replay: Replay,
) -> None:
    sdk, asked = replay(
        [
            httpx.Response(503, text="Service Unavailable"),
            httpx.Response(502, json={"detail": "Bad Gateway"}),
            httpx.Response(200, json=job("COMMITTED")),
        ]
    )
    assert sdk.wait("job_1").state is JobState.COMMITTED
    assert len(asked) == 3


def test_a_log_stream_the_coordinator_fails_is_not_resumed(replay: Replay) -> None:
    sdk, asked = replay([httpx.Response(500, json=INTERNAL), httpx.Response(200, text="")])
    with pytest.raises(InternalServerError):
        list(sdk.follow_logs("job_1"))
    assert asked == ["-1"]
