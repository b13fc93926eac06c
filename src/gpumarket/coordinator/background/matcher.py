"""The matcher loop: due QUEUED jobs to their best offer."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from gpumarket.coordinator.background.claim import claim
from gpumarket.coordinator.db.base import utcnow
from gpumarket.coordinator.db.engine import session_scope
from gpumarket.coordinator.db.models import Job
from gpumarket.coordinator.services import lifecycle, matching, verification
from gpumarket.coordinator.settings import CoordinatorSettings
from gpumarket.protocol import JobSpec, JobState

MAX_BATCHES_PER_TICK = 20


def match_queued(
    factory: sessionmaker[Session], settings: CoordinatorSettings, now: datetime | None = None
) -> list[str]:
    """Assign due QUEUED jobs to their best offer; returns the providers that got work."""
    return match_batch(factory, settings, now or utcnow())[0]


def match_batch(
    factory: sessionmaker[Session], settings: CoordinatorSettings, now: datetime
) -> tuple[list[str], int]:
    """One batch of :func:`match_queued`; also says how many due jobs it took (a full batch
    means more may be waiting)."""
    winners: list[str] = []
    with session_scope(factory) as session:
        jobs = claim(
            session,
            select(Job)
            .where(Job.state == JobState.QUEUED.value, Job.next_match_at <= now)
            .order_by(Job.next_match_at, Job.created_at)
            .limit(settings.match_batch_size),
        )
        for job in jobs:
            spec = JobSpec.model_validate(job.spec)
            # the runs of one verified job stay on distinct providers and hosts, always
            others = verification.group_providers(session, job)
            excluded = sorted({*job.excluded_provider_ids, *others})
            req = matching.Requirements.from_spec(spec, excluded, settings)
            if job.pinned_provider_id is not None:
                req = replace(req, only_provider=job.pinned_provider_id)
            winner = _assign_best(session, job, req, settings, now)
            if (
                winner is None
                and job.pinned_provider_id is None
                and lifecycle.may_retry_excluded(job, now, settings)
            ):
                # no one else takes it: those that failed it try again, up to max_attempts
                winner = _assign_best(
                    session,
                    job,
                    matching.Requirements.from_spec(spec, sorted(others) or None, settings),
                    settings,
                    now,
                )
            if winner is not None:
                winners.append(winner)
            else:
                job.match_failures += 1
                backoff = lifecycle.match_backoff_seconds(job.match_failures)
                job.next_match_at = now + timedelta(seconds=backoff)
    return winners, len(jobs)


def match_all(factory: sessionmaker[Session], settings: CoordinatorSettings) -> list[str]:
    """Drain a backlog in consecutive short transactions (each a batch), so a burst of
    submissions is matched at once instead of one batch per tick; the providers that got
    work."""
    winners: list[str] = []
    for _ in range(MAX_BATCHES_PER_TICK):
        found, taken = match_batch(factory, settings, utcnow())
        winners.extend(found)
        if taken < settings.match_batch_size:
            break
    return winners


def _explores(job_id: str, share: float) -> bool:
    """Whether this job is one of the share that tries newcomers first (stable per job)."""
    bucket = int.from_bytes(hashlib.sha256(job_id.encode()).digest()[:4], "big") / 2**32
    return bucket < share


def _assign_best(
    session: Session,
    job: Job,
    req: matching.Requirements,
    settings: CoordinatorSettings,
    now: datetime,
) -> str | None:
    """Assign ``job`` to the best offer meeting ``req``; returns its provider, or None. A share
    of jobs (``explore_share``, chosen by the job's id so a retry chooses the same) tries the
    newcomers first: a provider without a score is chosen on purpose, or it never earns one."""
    explore = req.min_score is None and _explores(job.id, settings.explore_share)
    for _ in range(3):  # a lost race for the best offer tries the next best
        found = None
        if explore:
            found = matching.find_best_offer(
                session, replace(req, newcomers_only=True), now, settings
            )
        if found is None:
            found = matching.find_best_offer(session, req, now, settings)
        if found is None:
            return None
        offer, provider = found
        gpu_uuids = matching.reserve(session, job, offer, provider, req)
        if gpu_uuids is not None:
            lifecycle.assign(session, job, offer, provider, gpu_uuids, settings, now)
            return provider.id
        session.expire_all()
    return None
