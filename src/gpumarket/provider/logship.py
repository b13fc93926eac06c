"""Shipping a container's output to the coordinator: batched, in order, capped, and never lost
while the coordinator is briefly down (a batch waits and is resent with the same ``seq``
numbers, which the coordinator ignores the second time). Output is coalesced into chunks of up
to 64 KiB, and the reader is held back when too much is waiting, which in turn holds back the
container's writes instead of dropping them. Progress is saved so a restarted daemon resumes."""

from __future__ import annotations

import codecs
import json
import logging
import threading
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path

from gpumarket.errors import GpumarketError
from gpumarket.protocol import LogAppend, LogChunk, LogStream
from gpumarket.provider.retry import policy
from gpumarket.sdk import ProviderClient

log = logging.getLogger(__name__)

BATCH_BYTES = 2 * 1024 * 1024
BATCH_SECONDS = 0.2
MAX_CHUNK_BYTES = 256 * 1024
MAX_WAITING_BYTES = 8 * 1024 * 1024


@dataclass
class ShipperState:
    """What has been shipped, persisted beside the job so a restart resumes without gaps."""

    next_seq: int = 0
    consumed: dict[str, int] = field(default_factory=lambda: {"stdout": 0, "stderr": 0})
    shipped_bytes: int = 0
    capped: bool = False

    @classmethod
    def load(cls, path: Path) -> ShipperState:
        """The saved state, or a fresh one."""
        try:
            return cls(**json.loads(path.read_text()))
        except (FileNotFoundError, json.JSONDecodeError, TypeError):
            return cls()

    def save(self, path: Path) -> None:
        """Write atomically."""
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self)))
        tmp.replace(path)


@dataclass
class _Segment:
    """Consecutive output of one stream, and the read offsets as of its last byte."""

    stream: str
    parts: list[str]
    size: int
    consumed: dict[str, int]
    shipped_bytes: int
    capped: bool


class LogShipper:
    """The container reader feeds it; a sender thread ships what waits, in order."""

    def __init__(
        self, client: ProviderClient, job_id: str, cap_bytes: int, state_path: Path
    ) -> None:
        self.client = client
        self.job_id = job_id
        self.cap = cap_bytes
        self.state_path = state_path
        saved = ShipperState.load(state_path)
        self.next_seq = saved.next_seq
        self.consumed = dict(saved.consumed)
        self.accepted_bytes = saved.shipped_bytes
        self.capped = saved.capped
        self._saved_consumed = dict(saved.consumed)
        self._waiting: deque[_Segment] = deque()
        self._waiting_bytes = 0
        self._decoders = {
            s: codecs.getincrementaldecoder("utf-8")("replace") for s in ("stdout", "stderr")
        }
        self._lock = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=f"logs-{job_id}", daemon=True)
        self._thread.start()

    def skip_for(self, stream: str) -> int:
        """Bytes of ``stream`` already shipped before a restart (a re-attached reader skips
        them)."""
        return self._saved_consumed.get(stream, 0)

    def feed(self, stream: str, data: bytes) -> None:
        """Queue output; past the cap, one notice is queued and the rest is dropped. Blocks
        while more than ``MAX_WAITING_BYTES`` wait to be shipped."""
        with self._lock:
            while self._waiting_bytes > MAX_WAITING_BYTES and not self._closed:
                self._lock.wait(0.5)
            self.consumed[stream] = self.consumed.get(stream, 0) + len(data)
            if self.capped:
                return
            # a NUL (binary output) cannot be stored as text: it is shown as U+FFFD instead
            text = self._decoders[stream].decode(data).replace("\x00", "\ufffd")
            room = self.cap - self.accepted_bytes
            encoded = text.encode()
            if len(encoded) > room:
                text = encoded[: max(room, 0)].decode("utf-8", "ignore")
                self.capped = True
            self.accepted_bytes += len(text.encode())
            self._append(stream, text)
            if self.capped:
                self._append(
                    "system",
                    f"\n[gpumarket] log cap of {self.cap} bytes reached on "
                    "the provider; further output is dropped\n",
                )
            self._lock.notify_all()

    def system(self, text: str) -> None:
        """A line from the daemon itself (image pulls, limits hit, outputs refused)."""
        with self._lock:
            self._append("system", text if text.endswith("\n") else text + "\n")
            self._lock.notify_all()

    def _append(self, stream: str, text: str) -> None:
        if not text:
            return
        size = len(text)
        last = self._waiting[-1] if self._waiting else None
        if last is not None and last.stream == stream and last.size + size <= MAX_CHUNK_BYTES:
            last.parts.append(text)
            last.size += size
        else:
            last = _Segment(stream, [text], size, {}, 0, False)
            self._waiting.append(last)
        last.consumed = dict(self.consumed)
        last.shipped_bytes = self.accepted_bytes
        last.capped = self.capped
        self._waiting_bytes += size

    def close(self, timeout: float = 60) -> bool:
        """Flush everything and stop; False when the coordinator could not take it in time."""
        with self._lock:
            self._closed = True
            self._lock.notify_all()
        self._thread.join(timeout)
        with self._lock:
            return not self._waiting

    def _take_batch(self) -> tuple[list[LogChunk], ShipperState] | None:
        """Turn waiting segments into numbered chunks (under the lock)."""
        chunks: list[LogChunk] = []
        size = 0
        state: ShipperState | None = None
        while self._waiting and size < BATCH_BYTES and len(chunks) < 900:
            segment = self._waiting.popleft()
            self._waiting_bytes -= segment.size
            data = "".join(segment.parts).encode()
            for start in range(0, len(data), MAX_CHUNK_BYTES):
                piece = data[start : start + MAX_CHUNK_BYTES].decode("utf-8", "ignore")
                chunks.append(
                    LogChunk(seq=self.next_seq, stream=LogStream(segment.stream), data=piece)
                )
                self.next_seq += 1
            size += len(data)
            state = ShipperState(
                next_seq=self.next_seq,
                consumed=segment.consumed,
                shipped_bytes=segment.shipped_bytes,
                capped=segment.capped,
            )
        self._lock.notify_all()  # room for a reader held back by MAX_WAITING_BYTES
        return (chunks, state) if chunks and state is not None else None

    def _run(self) -> None:
        in_flight: tuple[list[LogChunk], ShipperState] | None = None
        # coordinator down: the same batch goes again (same seq numbers), for as long as it takes
        upload = policy(
            f"log upload for {self.job_id}", first_delay=0.5, max_delay=10.0, give_up_after=None
        )
        while True:
            if in_flight is None:
                with self._lock:
                    if not self._waiting and not self._closed:
                        self._lock.wait(BATCH_SECONDS)
                    in_flight = self._take_batch()
                    if in_flight is None:
                        if self._closed:
                            return
                        continue
            chunks, state = in_flight
            try:
                upload(self.client.append_logs, self.job_id, LogAppend(chunks=chunks))
            except GpumarketError as exc:  # 4xx: the job is gone or no longer ours
                log.warning("coordinator refused logs of %s: %s", self.job_id, exc.message)
                with self._lock:
                    self._waiting.clear()
                    self._waiting_bytes = 0
                    self._lock.notify_all()
                in_flight = None
                continue
            state.save(self.state_path)
            in_flight = None
