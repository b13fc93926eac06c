"""Job logs: ordered, idempotent appends capped per job, and reads for tail and follow."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from gpumarket.coordinator.db.base import utcnow
from gpumarket.coordinator.db.engine import session_scope
from gpumarket.coordinator.db.models import Job, JobLogRow
from gpumarket.coordinator.services import jobs, providers
from gpumarket.coordinator.services.auth import Principal
from gpumarket.errors import Conflict
from gpumarket.protocol import JobState, LogAppend, LogAppendAck, LogLine, LogStream

_OPEN_LOG_STATES = (JobState.ASSIGNED.value, JobState.RUNNING.value)
TRUNCATION_NOTICE = "[gpumarket] log cap of {cap} bytes reached; further output is dropped\n"


def append(session: Session, job: Job, batch: LogAppend, cap_bytes: int) -> LogAppendAck:
    """Store the chunks not stored yet; past the cap, store one notice and drop the rest.

    Chunks are keyed by (job, seq): a provider re-sending after an outage cannot duplicate
    lines, and gaps are allowed (the reader orders by seq).
    """
    seqs = [c.seq for c in batch.chunks]
    seen = set(
        session.scalars(
            select(JobLogRow.seq).where(JobLogRow.job_id == job.id, JobLogRow.seq.in_(seqs))
        )
    )
    if job.state not in _OPEN_LOG_STATES and any(c.seq not in seen for c in batch.chunks):
        # the result is in (or the job ended): what it printed is settled with it
        raise Conflict(f"job {job.id} is {job.state}; its log is closed to new output")
    accepted = duplicates = 0
    now = utcnow()
    batch_seen: set[int] = set()
    for chunk in batch.chunks:
        if chunk.seq in seen or chunk.seq in batch_seen:
            duplicates += 1
            continue
        batch_seen.add(chunk.seq)
        if job.log_truncated:
            continue
        size = len(chunk.data.encode())
        if job.log_bytes + size > cap_bytes:
            job.log_truncated = True
            session.add(
                JobLogRow(
                    job_id=job.id,
                    seq=chunk.seq,
                    stream=LogStream.SYSTEM.value,
                    data=TRUNCATION_NOTICE.format(cap=cap_bytes),
                    at=now,
                )
            )
            continue
        job.log_bytes += size
        session.add(
            JobLogRow(
                job_id=job.id, seq=chunk.seq, stream=chunk.stream.value, data=chunk.data, at=now
            )
        )
        accepted += 1
    next_seq = (
        session.scalar(select(func.max(JobLogRow.seq)).where(JobLogRow.job_id == job.id)) or -1
    ) + 1
    next_seq = max([next_seq, *(s + 1 for s in batch_seen)])
    return LogAppendAck(
        accepted=accepted, duplicates=duplicates, truncated=job.log_truncated, next_seq=next_seq
    )


def append_from_provider(
    session: Session, principal: Principal, job_id: str, batch: LogAppend, cap_bytes: int
) -> LogAppendAck:
    """A provider's log batch: only the provider the job is assigned to may append (another
    gets the same 404 as for a job that does not exist), and the job row is locked so two
    batches arriving together are counted against the cap one after the other."""
    job = providers.own_job_for_update(session, principal, job_id)
    return append(session, job, batch, cap_bytes)


def read(session: Session, job_id: str, after_seq: int, limit: int) -> list[LogLine]:
    """Chunks with ``seq > after_seq``, in order."""
    rows = session.scalars(
        select(JobLogRow)
        .where(JobLogRow.job_id == job_id, JobLogRow.seq > after_seq)
        .order_by(JobLogRow.seq)
        .limit(limit)
    )
    return [LogLine(seq=r.seq, stream=r.stream, data=r.data, at=r.at) for r in rows]


def job_state(session: Session, job_id: str) -> JobState:
    """The current state, read fresh (the follow stream stops once the job has finished)."""
    state = session.scalar(select(Job.state).where(Job.id == job_id))
    return JobState(state) if state else JobState.FAILED


def read_visible(
    factory: sessionmaker[Session], principal: Principal, job_id: str, after: int, limit: int
) -> tuple[list[LogLine], JobState]:
    """One read of a log stream in its own short read transaction (a follower reads again
    and again without holding one open): the lines after ``after`` and the job's state, for a
    caller allowed to see the job."""
    with session_scope(factory) as session:
        job = jobs.get_visible(session, principal, job_id)
        return read(session, job_id, after, limit), JobState(job.state)
