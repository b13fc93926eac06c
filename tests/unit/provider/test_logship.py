"""Log shipping: order, batching, cap, resend after an outage, resume after a restart."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from gpumarket.errors import NotFound, Unreachable
from gpumarket.protocol import LogAppend, LogAppendAck
from gpumarket.provider.logship import LogShipper, ShipperState


class FlakyCoordinator:
    """Records chunks like the coordinator (idempotent by seq); fails the first N calls."""

    def __init__(self, failures: int = 0, refuse: bool = False) -> None:
        self.failures = failures
        self.refuse = refuse
        self.chunks: dict[int, tuple[str, str]] = {}
        self.calls = 0
        self.lock = threading.Lock()

    def append_logs(self, job_id: str, batch: LogAppend) -> LogAppendAck:
        with self.lock:
            self.calls += 1
            if self.refuse:
                raise NotFound("no such job")
            if self.failures:
                self.failures -= 1
                raise Unreachable("connection refused")
            for chunk in batch.chunks:
                self.chunks.setdefault(chunk.seq, (chunk.stream.value, chunk.data))
            return LogAppendAck(
                accepted=len(batch.chunks),
                duplicates=0,
                truncated=False,
                next_seq=max(self.chunks) + 1,
            )

    def text(self, stream: str | None = None) -> str:
        return "".join(
            d
            for s, d in (self.chunks[k] for k in sorted(self.chunks))
            if stream is None or s == stream
        )


def shipper(client: Any, path: Path, cap: int = 1 << 20) -> LogShipper:
    return LogShipper(client, "job_1", cap, path)


def test_everything_arrives_in_order_across_an_outage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    waits: list[float] = []
    monkeypatch.setattr("gpumarket.provider.retry.pause", waits.append)
    coordinator = FlakyCoordinator(failures=2)
    ship = shipper(coordinator, tmp_path / "logs.json")
    expected = "".join(f"line {i}\n" for i in range(500))
    for i in range(500):
        ship.feed("stdout", f"line {i}\n".encode())
    ship.feed("stderr", "é".encode()[:1])  # half a UTF-8 character ...
    ship.feed("stderr", "é".encode()[1:])  # ... completed by the next read
    assert ship.close()
    assert coordinator.text("stdout") == expected
    assert coordinator.text("stderr") == "é"
    assert coordinator.calls >= 3
    assert len(waits) == 2 and waits[0] < waits[1]  # the same batch again, after a longer wait


def test_cap_stops_output_with_one_notice(tmp_path: Path) -> None:
    coordinator = FlakyCoordinator()
    ship = shipper(coordinator, tmp_path / "logs.json", cap=1000)
    for _ in range(100):
        ship.feed("stdout", b"x" * 100)
    assert ship.close()
    assert coordinator.text("stdout") == "x" * 1000
    assert coordinator.text("system").count("log cap of 1000 bytes") == 1


def test_state_lets_a_restarted_daemon_resume(tmp_path: Path) -> None:
    coordinator = FlakyCoordinator()
    ship = shipper(coordinator, tmp_path / "logs.json")
    ship.feed("stdout", b"first\n")
    assert ship.close()
    state = ShipperState.load(tmp_path / "logs.json")
    assert state.consumed["stdout"] == 6 and state.next_seq == 1
    resumed = shipper(coordinator, tmp_path / "logs.json")
    assert resumed.skip_for("stdout") == 6
    resumed.feed("stdout", b"second\n")
    assert resumed.close()
    assert coordinator.text() == "first\nsecond\n"


def test_a_job_that_is_gone_stops_shipping(tmp_path: Path) -> None:
    coordinator = FlakyCoordinator(refuse=True)
    ship = shipper(coordinator, tmp_path / "logs.json")
    ship.feed("stdout", b"nobody listens\n")
    assert ship.close(timeout=5)
    assert coordinator.calls == 1  # a refusal is not sent again


def test_binary_output_with_nul_bytes_ships_as_storable_text(tmp_path: Path) -> None:
    """The coordinator refuses NUL in any text (no database column holds it): the shipper
    shows each as U+FFFD instead of losing the batch."""
    coordinator = FlakyCoordinator()
    ship = shipper(coordinator, tmp_path / "logs.json")
    ship.feed("stdout", b"before\x00after\n")
    assert ship.close()
    assert coordinator.text() == "before\ufffdafter\n"
    LogAppend.model_validate({"chunks": [{"seq": 0, "data": coordinator.text()}]})
