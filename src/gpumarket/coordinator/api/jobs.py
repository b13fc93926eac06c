"""Developer endpoints: submit, list, show, history, cancel, challenge, logs, outputs."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Header, Query, Request
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from gpumarket.coordinator.api.params import MAX_OFFSET, Cursor
from gpumarket.coordinator.background.notifier import log_key
from gpumarket.coordinator.deps import (
    DeveloperDep,
    FactoryDep,
    NotifierDep,
    PrincipalDep,
    ReadSessionDep,
    SessionDep,
    SettingsDep,
    SettlementDep,
    StoreDep,
)
from gpumarket.coordinator.services import disputes, jobs, logs, orders
from gpumarket.coordinator.services.auth import Principal
from gpumarket.errors import NotFound
from gpumarket.protocol import (
    FINISHED_STATES,
    JobEvent,
    JobPage,
    JobSpec,
    JobState,
    JobView,
    LogLine,
    OrderSignature,
)
from gpumarket.protocol.base import WireModel

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

FOLLOW_IDLE_SECONDS = 3.0
"""A follower is woken when its job's lines arrive at this replica; it also reads again after
about this long without a wake-up (lines that reached another replica, the job's end),
jittered so that followers opened together do not all read the database at once."""


class ChallengeBody(WireModel):
    """Why the developer disputes the result."""

    reason: str = Field(min_length=1, max_length=2000)
    tx_hash: str | None = Field(
        default=None,
        pattern=r"^0x[0-9a-fA-F]{64}$",
        description="on-chain markets: the developer's challenge transaction",
    )


@router.post("", response_model=JobView, status_code=201)
def submit_job(
    spec: JobSpec,
    principal: DeveloperDep,
    session: SessionDep,
    settings: SettingsDep,
    settlement: SettlementDep,
    notifier: NotifierDep,
    background: BackgroundTasks,
    idempotency_key: Annotated[
        str | None, Header(max_length=128, pattern=r"^[\x21-\x7e]+$")
    ] = None,
) -> JSONResponse:
    """Submit a job. Send an ``Idempotency-Key`` header to make retries safe."""
    job = jobs.submit(session, principal, spec, idempotency_key, settlement, settings)
    background.add_task(notifier.wake_matcher)
    # a hot path: serialise once here rather than have FastAPI validate the model again
    return JSONResponse(
        jobs.to_view(job, spec=spec).model_dump(mode="json"), status_code=201, background=background
    )


@router.get("", response_model=JobPage)
def list_jobs(
    principal: PrincipalDep,
    session: ReadSessionDep,
    state: Annotated[list[JobState] | None, Query(description="repeat to match several")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Cursor = None,
) -> JobPage:
    """Your jobs, newest first; follow ``next_cursor`` for the next page."""
    rows, next_cursor = jobs.list_jobs(session, principal, state or [], limit, cursor)
    return JobPage(items=[jobs.to_view(j) for j in rows], next_cursor=next_cursor)


@router.get("/{job_id}", response_model=JobView)
def show_job(
    job_id: str,
    principal: PrincipalDep,
    session: ReadSessionDep,
    settings: SettingsDep,
    explain: bool = True,
) -> JobView:
    """One job; a QUEUED job includes ``why_no_match``."""
    job = jobs.get_visible(session, principal, job_id)
    return jobs.view_with_explanation(session, job, settings, explain=explain)


@router.get("/{job_id}/events", response_model=list[JobEvent])
def job_events(job_id: str, principal: PrincipalDep, session: ReadSessionDep) -> list[JobEvent]:
    """The job's state history, with the reason for each transition."""
    return jobs.history(session, jobs.get_visible(session, principal, job_id))


@router.post("/{job_id}/cancel", response_model=JobView)
def cancel_job(
    job_id: str,
    principal: DeveloperDep,
    session: SessionDep,
    settings: SettingsDep,
    settlement: SettlementDep,
) -> JobView:
    """Cancel a job that has not finished; a running one pays for the seconds it used."""
    return jobs.to_view(jobs.cancel(session, principal, job_id, settlement, settings))


@router.post("/{job_id}/order", response_model=JobView)
def sign_order(
    job_id: str,
    body: OrderSignature,
    principal: DeveloperDep,
    settlement: SettlementDep,
    factory: FactoryDep,
    notifier: NotifierDep,
    background: BackgroundTasks,
) -> JSONResponse:
    """On-chain markets: send the signature over the job's ``payment`` request. The escrow is
    opened from your deposit and the job is QUEUED; a 402 says what is missing (a 404 on a
    market that keeps accounts off-chain: its jobs are queued at once)."""
    job = orders.sign_order(factory, settlement, principal, job_id, body.signature)
    background.add_task(notifier.wake_matcher)
    return JSONResponse(jobs.to_view(job).model_dump(mode="json"), background=background)


@router.post("/{job_id}/challenge", response_model=JobView)
def challenge_job(
    job_id: str,
    body: ChallengeBody,
    principal: DeveloperDep,
    settlement: SettlementDep,
    factory: FactoryDep,
) -> JobView:
    """Dispute a COMMITTED result before its challenge window closes. On an on-chain market,
    challenge the contract first (it takes the bond); this records it."""
    job = disputes.challenge(factory, settlement, principal, job_id, body.reason, body.tx_hash)
    return jobs.to_view(job)


def _read_logs(
    request: Request, principal: Principal, job_id: str, after: int, limit: int
) -> tuple[list[LogLine], JobState]:
    return logs.read_visible(
        request.app.state.read_session_factory, principal, job_id, after, limit
    )


@router.get(
    "/{job_id}/logs",
    response_model=list[LogLine],
    responses={
        200: {
            "description": "a JSON array of LogLine; with follow=true, NDJSON: one LogLine a line",
            "content": {
                "application/json": {},
                "application/x-ndjson": {
                    "schema": {"type": "string", "description": "LogLine objects, one a line"}
                },
            },
        }
    },
)
async def job_logs(
    job_id: str,
    request: Request,
    principal: PrincipalDep,
    after: Annotated[
        int, Query(ge=-1, le=MAX_OFFSET, description="return chunks with seq > after")
    ] = -1,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    follow: Annotated[bool, Query(description="stream NDJSON until the job ends")] = False,
) -> object:
    """The job's output. With ``follow=true`` the answer is a stream of NDJSON ``LogLine``s
    that keeps going while the job runs and ends once it has finished (or the coordinator is
    stopping: a client that finds the job unfinished resumes with ``after``)."""
    lines, state = await run_in_threadpool(_read_logs, request, principal, job_id, after, limit)
    if not follow:
        return lines

    async def stream() -> AsyncIterator[bytes]:
        cursor, batch, current = after, lines, state
        while True:
            for line in batch:
                cursor = line.seq
                yield (line.model_dump_json() + "\n").encode()
            if not batch:
                # logs and state are read in one transaction: an empty read of a finished job
                # means every line has been sent
                if current in FINISHED_STATES:
                    return
                if await request.is_disconnected():
                    return
                if request.app.state.shutting_down.is_set():
                    return  # the SDK sees the job unfinished and resumes after `cursor`
                idle = FOLLOW_IDLE_SECONDS * random.uniform(0.7, 1.3)  # noqa: S311 (not crypto)
                await request.app.state.notifier.wait(log_key(job_id), idle)
            batch, current = await run_in_threadpool(
                _read_logs, request, principal, job_id, cursor, limit
            )

    return StreamingResponse(stream(), media_type="application/x-ndjson")


@router.get(
    "/{job_id}/outputs",
    response_class=FileResponse,
    responses={
        200: {
            "description": "the output archive (tar.gz); X-Content-SHA256 is its hash, "
            "X-Output-Digest the canonical manifest digest of what it holds",
            "content": {"application/gzip": {"schema": {"type": "string", "format": "binary"}}},
        }
    },
)
def download_outputs(
    job_id: str, principal: PrincipalDep, session: ReadSessionDep, store: StoreDep
) -> FileResponse:
    """The job's /outputs as the provider uploaded it (a tar.gz), checked by its hash."""
    job = jobs.get_visible(session, principal, job_id)
    jobs.check_outputs_readable(session, principal, job)
    if not job.outputs_stored or job.output_hash is None:
        raise NotFound(f"job {job_id} has no outputs (state {job.state})")
    path = store.path_for(job.output_hash)
    headers = {"X-Content-SHA256": job.output_hash}
    if job.output_digest is not None:
        headers["X-Output-Digest"] = job.output_digest
    return FileResponse(
        path, media_type="application/gzip", filename=f"{job_id}-outputs.tar.gz", headers=headers
    )
