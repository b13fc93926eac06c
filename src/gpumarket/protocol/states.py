"""The job lifecycle states of DESIGN.md, shared by coordinator, SDK and CLI."""

from __future__ import annotations

from enum import StrEnum


class JobState(StrEnum):
    """Where a job is in its lifecycle; the terminal ones never change again."""

    SUBMITTED = "SUBMITTED"
    QUEUED = "QUEUED"
    ASSIGNED = "ASSIGNED"
    RUNNING = "RUNNING"
    COMMITTED = "COMMITTED"
    DISPUTED = "DISPUTED"
    SETTLED = "SETTLED"
    REFUNDED = "REFUNDED"
    CANCELLED = "CANCELLED"
    FAILED = "FAILED"
    EXPIRED = "EXPIRED"

    @property
    def is_terminal(self) -> bool:
        """Whether nothing can happen to the job any more."""
        return self in TERMINAL_STATES

    @property
    def holds_resources(self) -> bool:
        """Whether a provider's GPUs and CPU are reserved for the job in this state."""
        return self in (JobState.ASSIGNED, JobState.RUNNING)


TERMINAL_STATES = frozenset(
    {JobState.SETTLED, JobState.REFUNDED, JobState.CANCELLED, JobState.FAILED, JobState.EXPIRED}
)


FINISHED_STATES = TERMINAL_STATES | {JobState.COMMITTED, JobState.DISPUTED}
"""States a run never leaves for another run: the result is in (or the job ended without
one). What waiting for a job waits for unless told otherwise."""
