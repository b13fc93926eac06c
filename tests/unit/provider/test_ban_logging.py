"""A banned daemon says so once (an ERROR), not at every heartbeat and poll while the ban
lasts, and once when it is lifted."""

from __future__ import annotations

import logging
import threading
from types import SimpleNamespace

import pytest

from gpumarket.provider.daemon import ProviderDaemon


def test_a_ban_is_logged_once_and_its_end_once(caplog: pytest.LogCaptureFixture) -> None:
    daemon = SimpleNamespace(banned=False, _lock=threading.Lock())
    with caplog.at_level(logging.INFO, logger="gpumarket"):
        for _ in range(5):  # heartbeats and polls, every few seconds
            ProviderDaemon._note_banned(daemon, True)  # type: ignore[arg-type]
            ProviderDaemon._note_banned(daemon, True, "provider prv_1 is banned: spam")  # type: ignore[arg-type]
        ProviderDaemon._note_banned(daemon, False)  # type: ignore[arg-type]
        ProviderDaemon._note_banned(daemon, False)  # type: ignore[arg-type]
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "no new work until the operator lifts the ban" in errors[0].message
    assert [r.message for r in caplog.records if r.levelno == logging.INFO] == [
        "the operator lifted the ban: taking work again"
    ]
