"""Shipping a container's output to the coordinator: batched, in order, capped, and never lost
while the coordinator is briefly down (chunks wait in memory and are resent; ``seq`` makes the
resend harmless). Progress is saved so a restarted daemon continues where it stopped."""

from __future__ import annotations

import codecs
import json
import logging
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path

from gpumarket.errors import GpumarketError, TransportError
from gpumarket.protocol import LogAppend, LogChunk, LogStream
from gpumarket.sdk import ProviderClient

log = logging.getLogger(__name__)

BATCH_BYTES = 128 * 1024
BATCH_SECONDS = 0.25
MAX_CHUNK_BYTES = 64 * 1024


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


class LogShipper:
    """Accepts raw output from the container reader; a sender thread ships it in batches."""

    def __init__(
        self, client: ProviderClient, job_id: str, cap_bytes: int, state_path: Path
    ) -> None:
        self.client = client
        self.job_id = job_id
        self.cap = cap_bytes
        self.state_path = state_path
        self.state = ShipperState.load(state_path)
        # each chunk waits with the state as of its creation: saved once the chunk is shipped,
        # so a crash never skips output that was read but not yet sent
        self._pending: deque[tuple[LogChunk, ShipperState]] = deque()
        self._decoders = {
            s: codecs.getincrementaldecoder("utf-8")("replace") for s in ("stdout", "stderr")
        }
        self._lock = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=f"logs-{job_id}", daemon=True)
        self._thread.start()

    def skip_for(self, stream: str) -> int:
        """Bytes of ``stream`` already consumed (a re-attached reader skips them)."""
        return self.state.consumed.get(stream, 0)

    def feed(self, stream: str, data: bytes) -> None:
        """Queue output; past the cap, one notice is queued and the rest is dropped."""
        with self._lock:
            self.state.consumed[stream] = self.state.consumed.get(stream, 0) + len(data)
            if self.state.capped:
                return
            text = self._decoders[stream].decode(data)
            room = self.cap - self.state.shipped_bytes
            if len(text.encode()) > room:
                text = text.encode()[: max(room, 0)].decode("utf-8", "ignore")
                self.state.capped = True
            self._queue(stream, text)
            if self.state.capped:
                self._queue(
                    "system",
                    f"\n[gpumarket] log cap of {self.cap} bytes reached on the "
                    "provider; further output is dropped\n",
                )
            self._lock.notify()

    def system(self, text: str) -> None:
        """A line from the daemon itself (image pulls, limits hit, outputs refused)."""
        with self._lock:
            self._queue("system", text if text.endswith("\n") else text + "\n")
            self._lock.notify()

    def _queue(self, stream: str, text: str) -> None:
        data = text.encode()
        for start in range(0, len(data), MAX_CHUNK_BYTES):
            piece = data[start : start + MAX_CHUNK_BYTES].decode("utf-8", "ignore")
            if not piece:
                continue
            chunk = LogChunk(seq=self.state.next_seq, stream=LogStream(stream), data=piece)
            self.state.next_seq += 1
            if stream != "system":
                self.state.shipped_bytes += len(piece.encode())
            snapshot = ShipperState(
                next_seq=self.state.next_seq,
                consumed=dict(self.state.consumed),
                shipped_bytes=self.state.shipped_bytes,
                capped=self.state.capped,
            )
            self._pending.append((chunk, snapshot))

    def close(self, timeout: float = 60) -> bool:
        """Flush everything and stop; False when the coordinator could not take it in time."""
        with self._lock:
            self._closed = True
            self._lock.notify()
        self._thread.join(timeout)
        return not self._pending

    def _run(self) -> None:
        backoff = 0.5
        while True:
            with self._lock:
                if not self._pending and not self._closed:
                    self._lock.wait(BATCH_SECONDS)
                if not self._pending:
                    if self._closed:
                        self.state.save(self.state_path)
                        return
                    continue
                batch: list[LogChunk] = []
                size = 0
                last = self.state
                for chunk, snapshot in self._pending:
                    if len(batch) >= 1000 or size > BATCH_BYTES:
                        break
                    batch.append(chunk)
                    last = snapshot
                    size += len(chunk.data)
            try:
                self.client.append_logs(self.job_id, LogAppend(chunks=batch))
            except TransportError as exc:  # coordinator down: keep the chunks, try again
                log.warning(
                    "log upload for %s failed (%s); retrying in %.1fs",
                    self.job_id,
                    exc.message,
                    backoff,
                )
                time.sleep(backoff)
                backoff = min(backoff * 2, 10)
                continue
            except GpumarketError as exc:  # 4xx: the job is gone or no longer ours
                log.warning("coordinator refused logs of %s: %s", self.job_id, exc.message)
                with self._lock:
                    self._pending.clear()
                continue
            backoff = 0.5
            with self._lock:
                for _ in batch:
                    self._pending.popleft()
                last.save(self.state_path)
            if not self._closed:
                time.sleep(0.01)
