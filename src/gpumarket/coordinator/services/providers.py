"""Provider-facing operations: heartbeats (inventory, telemetry, offers), assignments and
reports of started, finished or failed jobs."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from gpumarket.coordinator.db.base import utcnow
from gpumarket.coordinator.db.engine import session_scope
from gpumarket.coordinator.db.models import GpuReservation, Job, OfferRow, Provider
from gpumarket.coordinator.services import lifecycle, reputation
from gpumarket.coordinator.services.auth import Principal
from gpumarket.coordinator.services.matching import heartbeat_cutoff, held_back
from gpumarket.coordinator.services.ranking import rank_price
from gpumarket.coordinator.services.settlement import SettlementBackend
from gpumarket.coordinator.settings import CoordinatorSettings
from gpumarket.errors import Conflict, InvalidRequest, NotFound, PermissionDenied
from gpumarket.protocol import (
    CPU_OFFER,
    Assignment,
    AssignmentBatch,
    FailureReport,
    GpuInfo,
    Heartbeat,
    HeartbeatAck,
    JobSpec,
    JobState,
    PreparationProgress,
    ProviderProfile,
    ProviderView,
    ResultReport,
    from_micros,
    to_micros,
)
from gpumarket.protocol.gpu import compute_capability_value, normalize_gpu_model


def get_provider(session: Session, provider_id: str) -> Provider:
    """The provider row, or NotFound."""
    provider = session.get(Provider, provider_id)
    if provider is None:
        raise NotFound(f"no provider {provider_id!r}")
    return provider


DISK_STEP_MB = 1024
"""The free disk a provider offers is counted in whole GiB (rounded down): the daemon reports
its work folder's free MiB, which moves with every beat, and matching needs no finer figure."""


def _offered(hb: Heartbeat) -> Heartbeat:
    """The heartbeat as matching reads it: the free disk rounded down to :data:`DISK_STEP_MB`,
    so a beat whose only change is a few MiB of disk rebuilds no offers and wakes no matcher."""
    disk = hb.resources.disk_mb // DISK_STEP_MB * DISK_STEP_MB
    if disk == hb.resources.disk_mb:
        return hb
    return hb.model_copy(update={"resources": hb.resources.model_copy(update={"disk_mb": disk})})


def _inventory_digest(hb: Heartbeat) -> str:
    """What, if changed, means the offers must be rebuilt (telemetry and running jobs excluded;
    serialised by pydantic's core in field order, which is fixed by the model)."""
    payload = hb.model_dump_json(include={"gpus", "offers", "resources", "region"})
    return hashlib.sha256(payload.encode()).hexdigest()


def _check_offers(hb: Heartbeat) -> None:
    models = {g.model for g in hb.gpus}
    unknown = [
        o.gpu_model for o in hb.offers if o.gpu_model != CPU_OFFER and o.gpu_model not in models
    ]
    if unknown:
        raise InvalidRequest(
            f"offers name GPU models this host does not have: {', '.join(unknown)} "
            f"(inventory: {', '.join(sorted(models)) or 'no GPUs'})"
        )
    uuids = [g.uuid for g in hb.gpus]
    if len(uuids) != len(set(uuids)):
        raise InvalidRequest("two GPUs in the inventory share a UUID")


def _rebuild_offers(session: Session, provider: Provider, hb: Heartbeat) -> None:
    """Upsert one offer row per offered model, keeping the coordinator's reservation counts."""
    groups: dict[str, list[GpuInfo]] = defaultdict(list)
    for gpu in hb.gpus:
        groups[gpu.model].append(gpu)
    existing = {
        o.gpu_model: o
        for o in session.scalars(select(OfferRow).where(OfferRow.provider_id == provider.id))
    }
    reserved: dict[str, int] = defaultdict(int)
    for model, count in session.execute(
        select(Job.offer_gpu_model, func.count())
        .join(GpuReservation, GpuReservation.job_id == Job.id)
        .where(GpuReservation.provider_id == provider.id)
        .group_by(Job.offer_gpu_model)
    ):
        if model is not None:
            reserved[model] = count
    now = utcnow()
    wanted: set[str] = set()
    for ask in hb.offers:
        price = to_micros(ask.price_per_hour)
        if ask.gpu_model == CPU_OFFER:
            values: dict[str, Any] = {
                "vram_mb": 0,
                "compute_capability": 0.0,
                "tflops": hb.resources.cpu_tflops,
                "total_count": 0,
            }
        else:
            gpus = groups[ask.gpu_model]
            tflops_values = [g.effective_tflops for g in gpus if g.effective_tflops is not None]
            values = {
                "vram_mb": min(g.memory_total_mb for g in gpus),
                "compute_capability": min(
                    compute_capability_value(g.compute_capability) for g in gpus
                ),
                "tflops": min(tflops_values) if tflops_values else None,
                "total_count": len(gpus),
            }
        values.update(
            price_micros=price,
            rank_price=rank_price(price, values["tflops"], provider.reputation),
            region=provider.region,
            updated_at=now,
            reserved_count=reserved.get(ask.gpu_model, 0),
        )
        wanted.add(ask.gpu_model)
        row = existing.get(ask.gpu_model)
        if row is None:
            session.add(OfferRow(provider_id=provider.id, gpu_model=ask.gpu_model, **values))
        else:
            for key, value in values.items():
                setattr(row, key, value)
    for model, row in existing.items():
        if model not in wanted:
            session.delete(row)


@dataclass(frozen=True)
class HeartbeatOutcome:
    """The answer for the provider, and whether the market changed (so matching should run)."""

    ack: HeartbeatAck
    market_changed: bool


def heartbeat(
    session: Session, principal: Principal, hb: Heartbeat, settings: CoordinatorSettings
) -> HeartbeatOutcome:
    """Record liveness, inventory and offers; extend the leases of jobs still running; tell the
    provider which of the jobs it runs it must stop."""
    _check_offers(hb)
    hb = _offered(hb)
    digest = _inventory_digest(hb)  # computed before the row lock is taken
    telemetry = [t.model_dump(mode="json") for t in hb.telemetry]
    now = utcnow()
    # The steady state (nothing but liveness changed) is one narrow SELECT and one UPDATE;
    # the full row is loaded only when the inventory or offers changed.
    state = session.execute(
        select(
            Provider.online,
            Provider.accepting,
            Provider.allows_network,
            Provider.inventory_digest,
            Provider.banned,
            Provider.reputation,
            Provider.stake_micros,
            Provider.last_heartbeat_at,
            Provider.uptime_days,
        )
        .where(Provider.id == principal.account_id)
        .with_for_update()
    ).first()
    if state is None:
        raise NotFound("this provider account no longer exists; register again")
    market_changed = (
        not state.online
        or state.accepting != hb.accepting
        or state.allows_network != hb.allows_network
    )
    values: dict[str, Any] = {
        "last_heartbeat_at": now,
        "online": True,
        "accepting": hb.accepting,
        "allows_network": hb.allows_network,
        "version": hb.version,
        "uptime_days": reputation.add_uptime(
            state.uptime_days,
            state.last_heartbeat_at,
            now,
            settings.provider_offline_after_seconds,
        ),
    }
    if telemetry:
        values["telemetry"] = telemetry
    session.execute(
        update(Provider)
        .where(Provider.id == principal.account_id)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if digest != state.inventory_digest:
        provider = session.get(Provider, principal.account_id, populate_existing=True)
        assert provider is not None
        if hb.region is not None:
            provider.region = hb.region
        provider.gpus = [g.model_dump(mode="json") for g in hb.gpus]
        provider.cpu_total = hb.resources.cpu_count
        provider.memory_total_mb = hb.resources.memory_mb
        provider.disk_total_mb = hb.resources.disk_mb
        provider.inventory_digest = digest
        _rebuild_offers(session, provider, hb)
        market_changed = True

    cancel_jobs: list[str] = []
    if hb.running_jobs:
        lease_until = now + timedelta(seconds=settings.lease_seconds)
        session.execute(
            update(Job)
            .where(
                Job.id.in_(hb.running_jobs),
                Job.provider_id == principal.account_id,
                Job.state == JobState.RUNNING.value,
            )
            .values(lease_expires_at=lease_until)
            .execution_options(synchronize_session=False)
        )
        still_theirs = set(
            session.scalars(
                select(Job.id).where(
                    Job.id.in_(hb.running_jobs),
                    Job.provider_id == principal.account_id,
                    Job.state.in_([JobState.ASSIGNED.value, JobState.RUNNING.value]),
                )
            )
        )
        cancel_jobs = [j for j in hb.running_jobs if j not in still_theirs]
    ack = HeartbeatAck(
        provider_id=principal.account_id,
        cancel_jobs=cancel_jobs,
        next_heartbeat_seconds=settings.heartbeat_interval_seconds,
        banned=state.banned,
        held_back=[
            miss.message for miss in held_back(state.reputation, state.stake_micros, settings)
        ],
    )
    return HeartbeatOutcome(ack=ack, market_changed=market_changed)


def pending_assignments(session: Session, provider_id: str) -> list[Assignment]:
    """Jobs assigned to the provider that it has not acknowledged yet."""
    jobs = session.scalars(
        select(Job)
        .where(Job.provider_id == provider_id, Job.state == JobState.ASSIGNED.value)
        .order_by(Job.assigned_at)
    )
    return [
        Assignment(
            job_id=job.id,
            spec=JobSpec.model_validate(job.spec),
            gpu_uuids=job.gpu_uuids,
            price_per_hour=from_micros(job.price_micros or 0),
            attempt=job.attempts,
            lease_expires_at=job.lease_expires_at or utcnow(),
            chain_job_id=_claim_job_ref(session, job),
            max_payment_micros=job.escrow_micros,
        )
        for job in jobs
    ]


def _claim_job_ref(session: Session, job: Job) -> str | None:
    """The on-chain job a provider signs its claim for: its own, or, for a verification run,
    the job it re-runs (the claim that pays it from the verification pool names that job)."""
    if job.verifies_job_id is None:
        return job.chain_job_id
    parent = session.get(Job, job.verifies_job_id)
    return parent.chain_job_id if parent is not None else None


@dataclass(frozen=True)
class AssignmentPoll:
    """One round of a provider's long poll: the jobs waiting for it, and whether it still
    takes work (a draining provider is answered at once instead of being held)."""

    batch: AssignmentBatch
    accepting: bool


def fetch_assignments(factory: sessionmaker[Session], provider_id: str) -> AssignmentPoll:
    """One round of the long poll, in its own short read transaction: the long-poll handler
    calls it again after each wake-up, so no connection is held while the request waits. A
    banned provider is refused here (it may still report on jobs it runs)."""
    with session_scope(factory) as session:
        provider = get_provider(session, provider_id)
        ensure_not_banned(provider)
        batch = AssignmentBatch(assignments=pending_assignments(session, provider_id))
        return AssignmentPoll(batch=batch, accepting=provider.accepting)


def own_job_for_update(session: Session, principal: Principal, job_id: str) -> Job:
    """The provider's own job, locked; a job that does not exist and one assigned to someone
    else get the same 404, so probing ids tells a provider nothing."""
    try:
        job = lifecycle.load_job_for_update(session, job_id)
    except NotFound:
        raise NotFound(f"no job {job_id!r} assigned to you") from None
    if job.provider_id != principal.account_id:
        if job.excluded_provider_ids and principal.account_id in job.excluded_provider_ids:
            raise Conflict(f"job {job_id} was taken away from you (lease expired or failed)")
        raise NotFound(f"no job {job_id!r} assigned to you")
    return job


def mark_started(
    session: Session, principal: Principal, job_id: str, settings: CoordinatorSettings
) -> Job:
    """The provider acknowledges the assignment and starts the container."""
    job = own_job_for_update(session, principal, job_id)
    lifecycle.start(session, job, settings)
    return job


def report_progress(
    session: Session,
    principal: Principal,
    job_id: str,
    progress: PreparationProgress,
    settings: CoordinatorSettings,
) -> Job:
    """The provider is still preparing an assigned job (pulling its image): keep the report
    for the developer's view and, when bytes moved since the last one, give the provider
    another acknowledgement period, so a large image is not requeued mid-pull while a stalled
    pull still is."""
    job = own_job_for_update(session, principal, job_id)
    if job.state != JobState.ASSIGNED.value:
        raise Conflict(f"job {job_id} is {job.state}; progress is only taken while it is ASSIGNED")
    before = job.progress or {}
    moved = (
        before.get("phase") != progress.phase
        or before.get("detail") != progress.detail
        or progress.done_bytes > int(before.get("done_bytes") or 0)
    )
    job.progress = progress.model_dump(mode="json")
    if moved:
        job.lease_expires_at = utcnow() + timedelta(seconds=settings.assignment_ack_seconds)
    return job


def check_outputs(job: Job, report: ResultReport) -> None:
    """A result that names outputs must name the ones uploaded for the job (on-chain too)."""
    if report.output_hash is None:
        return
    if job.outputs_stored and job.output_hash != report.output_hash:
        raise InvalidRequest(
            f"output_hash {report.output_hash} differs from the uploaded outputs "
            f"({job.output_hash})"
        )
    if not job.outputs_stored:
        raise InvalidRequest("upload the outputs before reporting a result that names them")
    if report.output_digest is not None and report.output_digest != job.output_digest:
        raise InvalidRequest(
            f"output_digest {report.output_digest} is not the canonical digest of the uploaded "
            f"outputs ({job.output_digest}); name the digest of the archive you uploaded"
        )


def report_failure(
    session: Session,
    principal: Principal,
    job_id: str,
    report: FailureReport,
    settlement: SettlementBackend,
    settings: CoordinatorSettings,
) -> Job:
    """The provider could not run the job: back to the queue without blame when it was only
    busy, requeue it elsewhere after a fault, or fail it with a refund."""
    job = own_job_for_update(session, principal, job_id)
    if report.busy and job.state == JobState.ASSIGNED.value:
        lifecycle.bounce_busy(session, job, f"provider busy: {report.reason}")
    elif report.retryable or report.busy:
        lifecycle.record_failure(session, job.provider_id)
        lifecycle.requeue_or_fail(
            session,
            job,
            f"provider failed: {report.reason}",
            settlement,
            settings,
            blame_provider=False,
        )
    else:
        lifecycle.fail(session, job, f"the job cannot run: {report.reason}", settlement)
    return job


def provider_view(row: Provider) -> ProviderView:
    """The wire view of a provider row (earnings as a token amount)."""
    data = {k: getattr(row, k) for k in ProviderView.model_fields if k != "earned"}
    return ProviderView(**data, earned=from_micros(row.earned_micros))


def list_providers(
    session: Session,
    online: bool | None = None,
    banned: bool | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[Provider]:
    """Providers for the operator's listing, most recently seen first (never-seen ones last,
    then by id so pages are stable), optionally only the online or the banned ones."""
    query = select(Provider)
    if online is not None:
        query = query.where(Provider.online.is_(online))
    if banned is not None:
        query = query.where(Provider.banned.is_(banned))
    return list(
        session.scalars(
            query.order_by(Provider.last_heartbeat_at.desc().nulls_last(), Provider.id)
            .limit(limit)
            .offset(offset)
        )
    )


def set_banned(session: Session, provider_id: str, banned: bool, reason: str | None) -> Provider:
    """Ban or unban a provider; a banned provider gets no new jobs and its offers leave the book."""
    provider = get_provider(session, provider_id)
    if banned and not reason:
        raise InvalidRequest("give a reason for the ban")
    provider.banned = banned
    provider.ban_reason = reason if banned else None
    return provider


def ensure_not_banned(provider: Provider) -> None:
    """Banned providers may still report on running jobs but not take new ones."""
    if provider.banned:
        raise PermissionDenied(f"provider {provider.id} is banned: {provider.ban_reason}")


def public_profile(
    session: Session, provider_id: str, settings: CoordinatorSettings
) -> ProviderProfile:
    """A provider's open reputation, for anyone: the counters, the score recomputed from them
    now (its uptime moves with time), and the sampling rate that score gives."""
    row = get_provider(session, provider_id)
    now = utcnow()
    score = reputation.provider_score(row, now)
    models: dict[str, int] = defaultdict(int)
    for gpu in row.gpus or []:
        models[normalize_gpu_model(str(gpu.get("name", "")))] += 1
    cutoff = heartbeat_cutoff(now, settings)
    return ProviderProfile(
        id=row.id,
        address=row.address,
        region=row.region,
        online=bool(
            row.online and row.last_heartbeat_at is not None and row.last_heartbeat_at >= cutoff
        ),
        registered_at=row.registered_at,
        gpu_models=dict(models),
        completed_jobs=row.completed_jobs,
        failed_jobs=row.failed_jobs,
        timed_out_jobs=row.timed_out_jobs,
        reruns_passed=row.reruns_passed,
        reruns_failed=row.reruns_failed,
        disputes_lost=row.disputes_lost,
        slashes=row.slashes,
        uptime_30d=round(reputation.uptime_fraction(row, now), 4),
        newcomer=score is None,
        score=score,
        sampling_rate=reputation.sampling_rate(
            score, row.reruns_passed, row.reruns_failed, settings
        ),
    )
