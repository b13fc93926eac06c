"""Provider endpoints: heartbeat, long-poll for assignments, and reports on each job."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Header, Query, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from gpumarket.coordinator.background.notifier import log_key
from gpumarket.coordinator.deps import (
    FactoryDep,
    NotifierDep,
    ProviderDep,
    ReadSessionDep,
    SessionDep,
    SettingsDep,
    SettlementDep,
    StoreDep,
)
from gpumarket.coordinator.services import artifacts, jobs, logs, providers, results
from gpumarket.errors import LimitExceeded
from gpumarket.protocol import (
    AssignmentBatch,
    FailureReport,
    Heartbeat,
    HeartbeatAck,
    JobView,
    LogAppend,
    LogAppendAck,
    OutputUploadAck,
    PreparationProgress,
    ProviderView,
    ResultReport,
    StartedReport,
)

router = APIRouter(prefix="/v1/provider", tags=["provider"])

DB_POLL_SECONDS = 1.0


@router.post("/heartbeat", response_model=HeartbeatAck)
def heartbeat(
    body: Heartbeat,
    principal: ProviderDep,
    session: SessionDep,
    settings: SettingsDep,
    notifier: NotifierDep,
    background: BackgroundTasks,
) -> JSONResponse:
    """Report inventory, telemetry, offers and running jobs; answers with jobs to stop."""
    outcome = providers.heartbeat(session, principal, body, settings)
    if outcome.market_changed:  # new capacity or prices: let queued jobs try again now
        background.add_task(notifier.wake_matcher)
    # the hottest path: serialise once here rather than have FastAPI validate the model again
    return JSONResponse(outcome.ack.model_dump(mode="json"), background=background)


@router.get("/assignments", response_model=AssignmentBatch)
async def poll_assignments(
    request: Request,
    principal: ProviderDep,
    settings: SettingsDep,
    wait: Annotated[float, Query(ge=0, description="seconds to hold the request open")] = 25.0,
) -> AssignmentBatch:
    """Long-poll: answers as soon as a job is assigned to you, or empty after ``wait``, or at
    once while your heartbeat says you are draining (so a daemon asked to stop is not held
    for the rest of the poll)."""
    deadline = time.monotonic() + min(wait, settings.long_poll_max_seconds)
    notifier = request.app.state.notifier
    factory = request.app.state.read_session_factory
    while True:
        poll = await run_in_threadpool(providers.fetch_assignments, factory, principal.account_id)
        remaining = deadline - time.monotonic()
        if poll.batch.assignments or not poll.accepting or remaining <= 0:
            return poll.batch
        if await request.is_disconnected() or request.app.state.shutting_down.is_set():
            return poll.batch
        await notifier.wait(principal.account_id, min(DB_POLL_SECONDS, remaining))


@router.get("/me", response_model=ProviderView)
def show_me(principal: ProviderDep, session: ReadSessionDep) -> ProviderView:
    """Your own record: what the coordinator knows of you, your reputation and earnings."""
    return providers.provider_view(providers.get_provider(session, principal.account_id))


@router.get("/jobs/{job_id}", response_model=JobView)
def show_assigned_job(job_id: str, principal: ProviderDep, session: ReadSessionDep) -> JobView:
    """A job assigned to you (its state tells you whether to keep running it)."""
    return jobs.to_view(jobs.get_visible(session, principal, job_id))


@router.post("/jobs/{job_id}/started", response_model=JobView)
def report_started(
    job_id: str,
    body: StartedReport,
    principal: ProviderDep,
    session: SessionDep,
    settings: SettingsDep,
) -> JobView:
    """Acknowledge an assignment: the container is starting (ASSIGNED -> RUNNING)."""
    return jobs.to_view(providers.mark_started(session, principal, job_id, settings))


@router.post("/jobs/{job_id}/progress", response_model=JobView)
def report_progress(
    job_id: str,
    body: PreparationProgress,
    principal: ProviderDep,
    session: SessionDep,
    settings: SettingsDep,
) -> JobView:
    """Report how far the image pull of an ASSIGNED job has got. Bytes moving since the last
    report extend the acknowledgement deadline; a job no longer ASSIGNED answers 409."""
    return jobs.to_view(providers.report_progress(session, principal, job_id, body, settings))


@router.post("/jobs/{job_id}/logs", response_model=LogAppendAck)
def append_logs(
    job_id: str,
    body: LogAppend,
    principal: ProviderDep,
    session: SessionDep,
    settings: SettingsDep,
    notifier: NotifierDep,
    background: BackgroundTasks,
) -> LogAppendAck:
    """Append output chunks; re-sending a chunk (same seq) is harmless."""
    ack = logs.append_from_provider(
        session, principal, job_id, body, settings.max_log_bytes_per_job
    )
    if ack.accepted:  # after the commit: a woken follower reads the new lines
        background.add_task(notifier.wake_waiting, log_key(job_id))
    return ack


@router.put("/jobs/{job_id}/outputs", response_model=OutputUploadAck)
async def upload_outputs(
    job_id: str,
    request: Request,
    principal: ProviderDep,
    store: StoreDep,
    settings: SettingsDep,
    content_sha256: Annotated[
        str, Header(alias="X-Content-SHA256", description="sha256:<hex> of the body")
    ],
) -> OutputUploadAck:
    """Stream the job's output archive; kept only if it hashes to ``X-Content-SHA256``."""
    artifacts.parse_hash(content_sha256)
    factory = request.app.state.session_factory
    await run_in_threadpool(artifacts.check_upload, factory, principal, job_id)
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > settings.max_output_bytes:
        raise LimitExceeded(f"outputs are over the {settings.max_output_bytes} byte cap")
    size = await store.put_stream(request.stream(), content_sha256, settings.max_output_bytes)
    digest = await run_in_threadpool(artifacts.archive_digest, store.path_for(content_sha256))
    return await run_in_threadpool(
        artifacts.record_upload, factory, principal, job_id, content_sha256, size, digest
    )


@router.post("/jobs/{job_id}/result", response_model=JobView)
def report_result(
    job_id: str,
    body: ResultReport,
    principal: ProviderDep,
    settings: SettingsDep,
    settlement: SettlementDep,
    factory: FactoryDep,
) -> JobView:
    """The job finished: commit the result (exit code, seconds used, outputs hash; on an
    on-chain market also the signed ``claim``, which is committed to the contract)."""
    job = results.report_result(factory, settlement, principal, job_id, body, settings)
    return jobs.to_view(job)


@router.post("/jobs/{job_id}/failure", response_model=JobView)
def report_failure(
    job_id: str,
    body: FailureReport,
    principal: ProviderDep,
    session: SessionDep,
    settings: SettingsDep,
    settlement: SettlementDep,
    notifier: NotifierDep,
    background: BackgroundTasks,
) -> JobView:
    """You could not run the job; ``retryable`` sends it to another provider."""
    job = providers.report_failure(session, principal, job_id, body, settlement, settings)
    background.add_task(notifier.wake_matcher)
    return jobs.to_view(job)
