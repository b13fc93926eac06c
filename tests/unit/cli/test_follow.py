"""``job submit --follow`` while the job waits: a spinner with the state, then a bar of the
image pull's bytes, in a terminal; one line per change without one. The SDK is a double that
plays back job views; the views are the protocol's own."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from typing import Any

import pytest
from rich.console import Console

from gpumarket.cli import jobs
from gpumarket.protocol import JobState, JobView, PreparationProgress


def view(state: JobState, progress: PreparationProgress | None = None) -> JobView:
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
        }
    )


class PlayBack:
    """Answers ``get`` with the next view, then the last one for ever."""

    def __init__(self, *views: JobView) -> None:
        self.views = list(views)

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
    monkeypatch.setattr(jobs, "err", Console(file=out, force_terminal=terminal, width=120))
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
