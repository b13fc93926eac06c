"""``job submit --follow`` while the job waits: a spinner with the state, then a bar of the
image pull's bytes, in a terminal; one line per change without one. The SDK is a double that
plays back job views; the views are the protocol's own."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import typer
from rich.console import Console

from gpumarket.cli import jobs
from gpumarket.protocol import JobState, JobView, LogLine, PreparationProgress


def console_double(file: io.StringIO, terminal: bool, width: int = 120) -> Console:
    """A console like the CLI's (no markup), writing to ``file``."""
    return Console(file=file, force_terminal=terminal, width=width, markup=False)


def view(state: JobState, progress: PreparationProgress | None = None, **fields: Any) -> JobView:
    now = datetime.now(UTC)
    return JobView.model_validate(
        {
            "id": "job-1",
            "state": state,
            "spec": {"image": "busybox", "max_price_per_hour": "1"},
            "owner": "dev",
            "created_at": now,
            "updated_at": now,
            "progress": progress,
            **fields,
        }
    )


class PlayBack:
    """Answers ``get`` with the next view, then the last one for ever; ``follow_logs`` plays
    ``lines``, one every ``pause`` seconds."""

    def __init__(self, *views: JobView, lines: tuple[str, ...] = (), pause: float = 0) -> None:
        self.views = list(views)
        self.lines = lines
        self.pause = pause

    def follow_logs(self, job_id: str) -> Iterator[LogLine]:
        for seq, data in enumerate(self.lines):
            time.sleep(self.pause)
            yield LogLine(seq=seq, stream="stdout", data=data, at=datetime.now(UTC))

    def get(self, job_id: str, explain: bool = True) -> JobView:
        return self.views.pop(0) if len(self.views) > 1 else self.views[0]


PULLING = PreparationProgress(
    detail="ghcr.io/acme/train:3 (1/4 layers)", done_bytes=1_500_000, total_bytes=3_000_000
)
VIEWS = (
    view(JobState.QUEUED),
    view(JobState.ASSIGNED),
    view(JobState.ASSIGNED, PULLING),
    view(JobState.ASSIGNED, PULLING.model_copy(update={"done_bytes": 2_900_000})),
    view(JobState.RUNNING),
)


def run_wait(monkeypatch: pytest.MonkeyPatch, terminal: bool) -> str:
    out = io.StringIO()
    monkeypatch.setattr(jobs, "err", console_double(out, terminal, 120))
    monkeypatch.setattr("gpumarket.cli.jobs.time.sleep", lambda seconds: None)
    sdk: Any = PlayBack(*VIEWS)
    jobs._wait_for_start(sdk, "job-1")
    return out.getvalue()


def test_a_terminal_shows_the_pull_as_a_bar_of_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    shown = run_wait(monkeypatch, terminal=True)
    assert "job-1: pulling ghcr.io/acme/train:3 (1/4 layers)" in shown
    assert "1.5/3.0 MB" in shown or "2.9/3.0 MB" in shown


def test_without_a_terminal_each_change_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    lines = run_wait(monkeypatch, terminal=False).splitlines()
    assert lines == [
        "job-1: QUEUED",
        "job-1: ASSIGNED",
        "job-1: pulling ghcr.io/acme/train:3 (1/4 layers)",
    ]


def explained(online: int, **summary: int) -> dict[str, Any]:
    return {"matches": [], "rejections": [], "summary": summary, "providers_considered": online}


def test_a_queued_job_says_why_it_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.StringIO()
    monkeypatch.setattr(jobs, "err", console_double(out, False, 120))
    monkeypatch.setattr("gpumarket.cli.jobs.time.sleep", lambda seconds: None)
    monkeypatch.setattr(jobs, "EXPLAIN_SECONDS", 0)
    sdk: Any = PlayBack(
        view(JobState.QUEUED, why_no_match=explained(0)),
        view(JobState.QUEUED, why_no_match=explained(0)),
        view(JobState.QUEUED, why_no_match=explained(2, stake=1, price=2)),
        view(JobState.QUEUED, why_no_match=explained(1, excluded=1)),
        view(JobState.ASSIGNED),
        view(JobState.RUNNING),
    )
    jobs._wait_for_start(sdk, "job-1")
    assert out.getvalue().splitlines() == [
        "job-1: QUEUED: no provider is online",
        "job-1: QUEUED: none of 2 online provider(s) fits (failing: stake 1, price 2)",
        "job-1: QUEUED: none of 1 online provider(s) fits (failing: already failed this job 1)",
        "job-1: ASSIGNED",
    ]


def running() -> JobView:
    """A job started 75 seconds ago."""
    return view(
        JobState.RUNNING,
        provider_id="prov-7",
        started_at=datetime.now(UTC) - timedelta(seconds=75),
        price_per_hour="0.45",
    )


def stream(monkeypatch: pytest.MonkeyPatch, terminal: bool) -> str:
    out = io.StringIO()
    monkeypatch.setattr(jobs, "console", console_double(out, terminal, 120))
    monkeypatch.setattr(jobs, "STATUS_SECONDS", 0.01)
    sdk: Any = PlayBack(running(), lines=("epoch 1\n", "epoch 2\n"), pause=0.3)
    jobs._stream_logs(sdk, "job-1")
    return out.getvalue()


def test_a_terminal_keeps_a_status_line_under_the_log(monkeypatch: pytest.MonkeyPatch) -> None:
    shown = stream(monkeypatch, terminal=True)
    assert "epoch 1" in shown and "epoch 2" in shown
    assert "RUNNING on prov-7 for 0:01:1" in shown and "at 0.45/h" in shown
    assert "job-1: RUNNING" not in shown  # the id was printed at submit: the line fits 80


def test_without_a_terminal_only_the_log_is_printed(monkeypatch: pytest.MonkeyPatch) -> None:
    assert stream(monkeypatch, terminal=False) == "epoch 1\nepoch 2\n"


def test_the_live_tail_leaves_lines_as_a_terminal_would() -> None:
    tail = jobs._LiveTail()
    assert tail.feed("stdout", "epoch 1\nloading") == ["epoch 1"]
    assert tail.feed("stderr", "warn: slow\n") == ["warn: slow"]
    assert tail.feed("stdout", "\r 50%|#####     |") == []  # a bar redrawn in place
    assert tail.partial == {"stdout": "loading\r 50%|#####     |"}
    assert tail.feed("stdout", "\r100%|##########|\nepoch 2\n") == ["100%|##########|", "epoch 2"]
    assert tail.partial == {}


class Interrupted(PlayBack):
    """Ctrl-C arrives while the log streams."""

    def follow_logs(self, job_id: str) -> Iterator[LogLine]:
        yield LogLine(seq=0, stream="stdout", data="tick 1\n", at=datetime.now(UTC))
        raise KeyboardInterrupt


def test_ctrl_c_stops_following_not_the_job(monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.StringIO()
    monkeypatch.setattr(jobs, "err", console_double(out, False, 200))
    monkeypatch.setattr(jobs, "console", console_double(io.StringIO(), False))
    monkeypatch.setattr("gpumarket.cli.jobs.time.sleep", lambda seconds: None)
    sdk: Any = Interrupted(view(JobState.RUNNING))
    with pytest.raises(typer.Exit) as stopped:
        jobs._follow(sdk, "job-1")
    assert stopped.value.exit_code == 130
    assert "stopped following job-1; the job goes on" in out.getvalue()
    assert "gpumarket job logs job-1 -f" in out.getvalue()


def test_the_ending_names_only_what_the_job_has() -> None:
    assert jobs._ending(view(JobState.FAILED)) == "job-1: FAILED"
    ran = view(JobState.COMMITTED, exit_code=3, cost="0.000120")
    assert jobs._ending(ran) == "job-1: COMMITTED, exit code 3, cost 0.000120"
