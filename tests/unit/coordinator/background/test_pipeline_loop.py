"""A background loop through an RPC outage, driven by a tick double: it backs off instead of
retrying at its pace, logs the outage once each way, and still logs a bug with its traceback."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import pytest
import requests
from sqlalchemy.orm import Session, sessionmaker

from gpumarket.coordinator.background import pipelines
from gpumarket.coordinator.background.backoff import MAX_BACKOFF_SECONDS
from gpumarket.coordinator.background.notifier import Notifier
from gpumarket.coordinator.services.offchain import OffchainSettlement
from gpumarket.coordinator.settings import CoordinatorSettings


class Stop(BaseException):
    """Ends the loop under test (the loop only catches Exception)."""


class Tick:
    """Plays a script of outcomes: an exception to raise, or None for a good tick."""

    def __init__(self, script: list[BaseException | None]) -> None:
        self.script: Iterator[BaseException | None] = iter(script)
        self.calls = 0

    def __call__(self) -> None:
        self.calls += 1
        outcome = next(self.script, Stop())
        if outcome is not None:
            raise outcome


def refused() -> requests.ConnectionError:
    return requests.ConnectionError("[Errno 111] Connection refused")


def test_an_outage_backs_off_and_is_logged_once_each_way(
    factory: sessionmaker[Session],
    svc_settings: CoordinatorSettings,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    slept: list[float] = []

    async def sleep(delay: float) -> None:
        slept.append(delay)

    monkeypatch.setattr("gpumarket.coordinator.background.pipelines.asyncio.sleep", sleep)
    caplog.set_level(logging.INFO, logger=pipelines.log.name)
    outage = 8
    tick = Tick([*[refused() for _ in range(outage)], None, None, ValueError("a bug"), None])
    loops = pipelines.Pipelines(factory, svc_settings, OffchainSettlement(), Notifier())
    interval = 0.5
    with pytest.raises(Stop):
        asyncio.run(loops._loop("chain", tick, interval))

    assert tick.calls == outage + 5
    for tries, delay in enumerate(slept[:outage], start=1):
        top = min(MAX_BACKOFF_SECONDS, interval * 2**tries)
        assert top / 2 <= delay <= top, (tries, delay)
    assert max(slept[:outage]) > 4 * interval  # it did back off
    # a good tick, a bug and good ticks again: the normal pace, jittered, except after the
    # bug, which backs off like any failure
    after_good_1, after_good_2, after_bug, after_good_3 = slept[outage:]
    for delay in (after_good_1, after_good_2, after_good_3):
        assert 0.8 * interval <= delay <= 1.2 * interval
    assert interval <= after_bug <= 2 * interval

    mine = [r for r in caplog.records if r.name == pipelines.log.name]
    assert [r.levelname for r in mine] == ["WARNING", "INFO", "ERROR"]
    warning, info, error = mine
    assert warning.exc_info is None and "Connection refused" in warning.getMessage()
    assert f"({outage} failed tries)" in info.getMessage()
    assert error.exc_info is not None and "chain failed" in error.getMessage()
