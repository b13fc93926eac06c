"""httpx clients of the coordinator: every method returns a ``protocol`` model and every
failure is raised as the project's exception tree (:mod:`gpumarket.errors`)."""

from __future__ import annotations

import hashlib
import json
import tarfile
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Self

import httpx
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from tenacity import RetryCallState, Retrying, stop_after_delay

from gpumarket.errors import (
    Conflict,
    IntegrityCheckFailed,
    InvalidRequest,
    NotFound,
    Unreachable,
    WaitTimedOut,
    error_from_response,
)
from gpumarket.protocol import (
    FINISHED_STATES,
    Assignment,
    AssignmentBatch,
    BanBody,
    ChainChange,
    ChainInfo,
    Challenge,
    Credential,
    FailureReport,
    FeeBody,
    Heartbeat,
    HeartbeatAck,
    JobEvent,
    JobPage,
    JobSpec,
    JobState,
    JobView,
    LogAppend,
    LogAppendAck,
    LogLine,
    MarketStats,
    MatchExplanation,
    Offer,
    OutputUploadAck,
    PauseBody,
    PreparationProgress,
    ProviderProfile,
    ProviderView,
    ResolveBody,
    ResultReport,
    Role,
    StartedReport,
    VerificationMode,
)
from gpumarket.protocol.jobs import spec_hash
from gpumarket.protocol.manifest import manifest_digest, manifest_of_archive
from gpumarket.protocol.pricing import max_payment_micros
from gpumarket.sdk import retry
from gpumarket.settlement.signing import Order, job_id_bytes, sign_order

DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=5.0)
RESUME_SECONDS = 60.0
"""How long a followed log stream, or a wait, keeps trying to reach the coordinator before
it gives up (failed tries in a row: an answer starts the count again)."""
MAX_POLL_SECONDS = 5.0
"""The longest pause between two looks of :meth:`Client.wait`."""


class PaymentPending(UserWarning):
    """A job submitted to an on-chain market without ``wallet=``: it stays SUBMITTED (no
    provider sees it) until the developer signs its order with :meth:`Client.pay`."""


class _BaseClient:
    """Shared transport: base URL, bearer key, error mapping."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise InvalidRequest(
                f"the coordinator URL {base_url!r} must start with http:// or https://, e.g. "
                f"http://{base_url.split('://')[-1]}"
            )
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"), headers=headers, timeout=timeout, transport=transport
        )

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise Unreachable(
                f"cannot reach the coordinator at {self._http.base_url}: {exc}"
            ) from exc
        _raise_for_status(response)
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._request(method, path, **kwargs)
        try:
            return response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise _not_a_coordinator(response, "an answer that is not JSON") from None

    def events(self, job_id: str) -> list[JobEvent]:
        """The job's transitions with reasons (a developer's own jobs, a provider's, or any
        job with the admin token)."""
        return [JobEvent.model_validate(e) for e in self._json("GET", f"/v1/jobs/{job_id}/events")]

    def chain_info(self) -> ChainInfo | None:
        """The market contract the coordinator settles on; None when it settles off-chain."""
        try:
            return ChainInfo.model_validate(self._json("GET", "/v1/chain"))
        except NotFound:
            return None


def _check_output_digest(archive: Path, expected: str, job_id: str) -> None:
    """The downloaded archive must hold what the provider's signed result names: its
    canonical manifest digest is recomputed here, not taken from anyone."""
    try:
        got = manifest_digest(manifest_of_archive(archive))
    except (tarfile.TarError, EOFError, ValueError) as exc:
        raise IntegrityCheckFailed(
            f"the outputs of {job_id} are not a valid archive: {exc}"
        ) from exc
    if got != expected:
        raise IntegrityCheckFailed(
            f"the outputs of {job_id} hold files whose digest is {got}, not the {expected} "
            "the provider's result names"
        )


def _raise_for_status(response: httpx.Response) -> None:
    if response.is_success:
        return
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = {"detail": response.text[:500] or response.reason_phrase}
    if response.status_code == 404 and not (isinstance(body, dict) and "code" in body):
        raise _not_a_coordinator(response)
    raise error_from_response(response.status_code, body)


def _not_a_coordinator(response: httpx.Response, what: str = "") -> Unreachable:
    """A 404 without a gpumarket error code (a coordinator says what it did not find, with a
    code), or an answer that is not JSON: the URL points at something else than a coordinator.
    Raised as a transport error, so that :meth:`_BaseClient.chain_info` does not read it as
    "this market keeps accounts off-chain"."""
    request = response.request
    base = f"{request.url.scheme}://{request.url.netloc.decode()}"
    answer = what or f"{response.status_code} {response.reason_phrase}"
    return Unreachable(
        f"{base} does not look like a gpumarket coordinator: it answered "
        f"{answer} to {request.method} {request.url.path} "
        "(check --coordinator or GPUMARKET_COORDINATOR, or `gpumarket login --coordinator URL`)"
    )


def register_wallet(
    base_url: str,
    account: LocalAccount,
    role: Role,
    region: str | None = None,
    transport: httpx.BaseTransport | None = None,
) -> Credential:
    """Sign the coordinator's challenge with ``account`` and get an API key for ``role``."""
    with _BaseClient(base_url, transport=transport) as anon:
        challenge = Challenge.model_validate(
            anon._json(
                "POST", "/v1/auth/challenge", json={"address": account.address, "role": role.value}
            )
        )
        signed = account.sign_message(encode_defunct(text=challenge.message))
        body: dict[str, Any] = {
            "challenge_id": challenge.challenge_id,
            "signature": "0x" + signed.signature.hex().removeprefix("0x"),
        }
        if region is not None:
            body["region"] = region
        return Credential.model_validate(anon._json("POST", "/v1/auth/register", json=body))


class Client(_BaseClient):
    """The developer's client: submit jobs, follow them, fetch outputs, browse offers."""

    def submit(
        self,
        spec: JobSpec,
        idempotency_key: str | None = None,
        wallet: LocalAccount | None = None,
    ) -> JobView:
        """Submit a job; pass ``idempotency_key`` to make a retry return the same job.

        On a market that settles on-chain the job waits in SUBMITTED for its signed order:
        with ``wallet`` it is signed and sent at once (see :meth:`pay`)."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        view = JobView.model_validate(
            self._json(
                "POST",
                "/v1/jobs",
                json=spec.model_dump(mode="json", exclude_none=True),
                headers=headers,
            )
        )
        if view.payment is not None:
            if wallet is not None:
                return self.pay(view, wallet, spec)
            warnings.warn(
                f"job {view.id} waits in SUBMITTED for the developer's signature: this market "
                "settles on-chain, so no provider gets it until its order is signed; pass "
                "wallet= to submit(), or call pay(job, wallet)",
                PaymentPending,
                stacklevel=2,
            )
        return view

    def pay(self, job: JobView, wallet: LocalAccount, spec: JobSpec | None = None) -> JobView:
        """Sign the job's payment request with ``wallet`` and send it: the coordinator opens
        the escrow from your deposit and queues the job. The request is checked against the
        spec first, so a coordinator cannot make you sign for another job or a larger sum."""
        request = job.payment
        if request is None:
            raise InvalidRequest(f"job {job.id} is {job.state.value} and asks for no payment")
        spec = spec or job.spec
        premium = 0
        if spec.verification is not VerificationMode.OPTIMISTIC:  # its escrow holds a premium
            chain = self.chain_info()
            premium = chain.premium_bps if chain is not None else 0
        expected = {
            "spec_hash": "0x" + spec_hash(spec),
            "max_payment_micros": max_payment_micros(spec, premium),
            "chain_job_id": "0x" + job_id_bytes(job.id).hex(),
        }
        for field, value in expected.items():
            if getattr(request, field) != value:
                raise InvalidRequest(
                    f"refusing to sign: the payment request's {field} is "
                    f"{getattr(request, field)}, but this job's is {value}"
                )
        signature = sign_order(
            wallet, Order.from_request(request), request.chain_id, request.market
        )
        return JobView.model_validate(
            self._json(
                "POST", f"/v1/jobs/{job.id}/order", json={"signature": "0x" + signature.hex()}
            )
        )

    def get(self, job_id: str, explain: bool = True) -> JobView:
        """One job (a queued one says why no provider took it)."""
        return JobView.model_validate(
            self._json("GET", f"/v1/jobs/{job_id}", params={"explain": explain})
        )

    def wait(
        self,
        job_id: str,
        states: Iterable[JobState] = FINISHED_STATES,
        timeout: float | None = None,
        poll_seconds: float = 0.5,
    ) -> JobView:
        """Block until the job is in one of ``states`` (by default: its run is over, whether
        COMMITTED or ended without a result) and return it. Polls, backing off to 5 s
        between looks; :class:`WaitTimedOut` after ``timeout`` seconds (None: no limit). A
        coordinator that restarts meanwhile is waited for, up to ``RESUME_SECONDS`` of
        failed looks in a row (then :class:`Unreachable`); a coordinator that fails on the
        request itself (:class:`~gpumarket.errors.InternalServerError`, a 500) is not asked
        again."""
        wanted = frozenset(states)
        started = time.monotonic()

        def unanswered(state: RetryCallState) -> JobView:
            # an outage of RESUME_SECONDS raises its last failure; else the timeout came first
            failure = state.outcome.exception() if state.outcome is not None else None
            assert failure is not None
            if stop_after_delay(RESUME_SECONDS)(state):
                raise failure
            raise WaitTimedOut(
                f"job {job_id}: the coordinator did not answer before {timeout:g} s"
            ) from failure

        def look() -> JobView:
            left = None if timeout is None else timeout - (time.monotonic() - started)
            policy = retry.resuming(RESUME_SECONDS, within=left, on_give_up=unanswered)
            answer: JobView = policy(self.get, job_id, explain=False)
            return answer

        def still_waiting(state: RetryCallState) -> JobView:
            assert state.outcome is not None
            job: JobView = state.outcome.result()
            raise WaitTimedOut(
                f"job {job_id} is still {job.state.value} after {timeout:g} s",
                details={"state": job.state.value},
            )

        polls = retry.polling(
            lambda job: job.state in wanted or job.state.is_terminal,  # terminal: never now
            first=poll_seconds,
            most=MAX_POLL_SECONDS,
            within=timeout,
            on_give_up=still_waiting,
        )
        job: JobView = polls(look)
        if job.state not in wanted:
            raise Conflict(
                f"job {job_id} ended {job.state.value} and will never be "
                + " or ".join(sorted(s.value for s in wanted))
            )
        return job

    def jobs(
        self, states: Iterable[JobState] = (), limit: int = 50, cursor: str | None = None
    ) -> JobPage:
        """A page of your jobs, newest first."""
        params: dict[str, Any] = {"limit": limit, "state": [s.value for s in states]}
        if cursor:
            params["cursor"] = cursor
        return JobPage.model_validate(self._json("GET", "/v1/jobs", params=params))

    def cancel(self, job_id: str) -> JobView:
        """Cancel a job that has not finished."""
        return JobView.model_validate(self._json("POST", f"/v1/jobs/{job_id}/cancel"))

    def challenge(self, job_id: str, reason: str, wallet: LocalAccount | None = None) -> JobView:
        """Dispute a committed result inside its challenge window. On an on-chain market the
        challenge is ``wallet``'s own transaction to the contract (which takes the bond)."""
        body: dict[str, Any] = {"reason": reason}
        chain = self.chain_info()
        if chain is not None:
            if wallet is None:
                raise InvalidRequest(
                    "this market settles on-chain: a challenge is sent from your wallet "
                    "(pass wallet=)"
                )
            job = self.get(job_id, explain=False)
            if job.state is not JobState.COMMITTED:
                raise InvalidRequest(_why_not_challengeable(job))
            if job.chain_job_id is None:
                raise InvalidRequest(f"job {job_id} has no escrow on-chain to challenge")
            from gpumarket.settlement.wallet import MarketWallet

            body["tx_hash"] = MarketWallet(chain, wallet).challenge(job.chain_job_id)
        return JobView.model_validate(self._json("POST", f"/v1/jobs/{job_id}/challenge", json=body))

    def logs(self, job_id: str, after: int = -1, limit: int = 1000) -> list[LogLine]:
        """Log chunks with seq > ``after``."""
        data = self._json("GET", f"/v1/jobs/{job_id}/logs", params={"after": after, "limit": limit})
        return [LogLine.model_validate(x) for x in data]

    def follow_logs(
        self, job_id: str, after: int = -1, resume_seconds: float = RESUME_SECONDS
    ) -> Iterator[LogLine]:
        """Stream log chunks as they arrive until the job finishes. A stream that ends or
        breaks while the job is unfinished (the coordinator restarting, a proxy answering
        502-504, the network) is resumed after the last chunk received, so nothing is lost or
        repeated; :class:`Unreachable` once the coordinator has been unreachable for
        ``resume_seconds``."""
        cursor = after

        def gave_up(state: RetryCallState) -> None:
            failure = state.outcome.exception() if state.outcome is not None else None
            raise Unreachable(
                f"log stream interrupted, and the coordinator unreachable for "
                f"{resume_seconds:.0f}s: {failure}"
            ) from failure

        def resuming() -> Retrying:  # a fresh outage count for each call: an answer ends one
            return retry.resuming(resume_seconds, on_give_up=gave_up)

        for connection in retry.reconnecting():  # each one resumes after the last chunk
            with connection:
                response = resuming()(self._open_log_stream, job_id, cursor)
                try:
                    for line in response.iter_lines():
                        if line.strip():
                            chunk = LogLine.model_validate_json(line)
                            cursor = chunk.seq
                            yield chunk
                except httpx.TransportError as exc:
                    raise retry.StreamEnded(f"the log stream broke: {exc}") from exc
                finally:
                    response.close()
                # the server ends the stream once the job has finished, or when it stops
                if resuming()(self.get, job_id, explain=False).state not in FINISHED_STATES:
                    raise retry.StreamEnded("the log stream ended before the job")
                # it may have finished after a stop cut the stream: read what is left
                while rest := resuming()(self.logs, job_id, after=cursor):
                    for chunk in rest:
                        cursor = chunk.seq
                        yield chunk
                return

    def _open_log_stream(self, job_id: str, after: int) -> httpx.Response:
        """Open the NDJSON stream of the job's log after chunk ``after`` (the caller reads and
        closes it). A failure to open it is raised as the project's error, so that the resume
        policy sees which ones are worth another try: a refused connection, a proxy's 502-504
        or a coordinator restarting are; a refusal (404, 403) is not."""
        request = self._http.build_request(
            "GET",
            f"/v1/jobs/{job_id}/logs",
            params={"after": after, "follow": True},
            timeout=httpx.Timeout(None, connect=5.0),
        )
        try:
            response = self._http.send(request, stream=True)
        except httpx.TransportError as exc:
            raise Unreachable(
                f"cannot reach the coordinator at {self._http.base_url}: {exc}"
            ) from exc
        if not response.is_success:
            try:
                response.read()
                _raise_for_status(response)
            finally:
                response.close()
        return response

    def download_outputs(
        self,
        job_id: str,
        dest: Path,
        on_progress: Callable[[int, int | None], None] | None = None,
    ) -> Path:
        """Save the job's output archive to ``dest`` (a file path) and return it;
        ``on_progress(bytes_so_far, total_or_None)`` is called as chunks arrive. The bytes go
        to ``dest`` + ``.part`` first: an interrupted download never leaves a truncated
        archive under the final name (``gpumarket.sdk.extract_outputs`` unpacks it), nor one
        whose hash differs from the one the provider's result names (``IntegrityCheckFailed``)."""
        partial = dest.with_name(dest.name + ".part")
        try:
            with self._http.stream("GET", f"/v1/jobs/{job_id}/outputs") as response:
                if not response.is_success:
                    response.read()
                    _raise_for_status(response)
                declared = response.headers.get("content-length")
                total = int(declared) if declared and declared.isdigit() else None
                expected = response.headers.get("x-content-sha256")
                expected_digest = response.headers.get("x-output-digest")
                digest = hashlib.sha256()
                done = 0
                with partial.open("wb") as out:
                    for chunk in response.iter_bytes():
                        out.write(chunk)
                        digest.update(chunk)
                        done += len(chunk)
                        if on_progress is not None:
                            on_progress(done, total)
            got = f"sha256:{digest.hexdigest()}"
            if expected is not None and got != expected:
                raise IntegrityCheckFailed(
                    f"the outputs of {job_id} arrived damaged: their hash is {got}, the "
                    f"provider's result names {expected}; download them again"
                )
            if expected_digest is not None:
                _check_output_digest(partial, expected_digest, job_id)
            partial.replace(dest)
        except httpx.TransportError as exc:
            raise Unreachable(f"download interrupted: {exc}") from exc
        finally:
            partial.unlink(missing_ok=True)
        return dest

    def offers(
        self,
        gpu_model: str | None = None,
        region: str | None = None,
        max_price: str | None = None,
        limit: int = 100,
    ) -> list[Offer]:
        """The public offer book."""
        params = {
            k: v
            for k, v in {
                "gpu_model": gpu_model,
                "region": region,
                "max_price": max_price,
                "limit": limit,
            }.items()
            if v is not None
        }
        return [Offer.model_validate(o) for o in self._json("GET", "/v1/offers", params=params)]

    def provider_profile(self, provider_id: str) -> ProviderProfile:
        """A provider's public record: the counters behind its score, the score and the
        sampling rate it gets (no credential needed)."""
        return ProviderProfile.model_validate(self._json("GET", f"/v1/providers/{provider_id}"))

    def match(self, spec: JobSpec) -> MatchExplanation:
        """Dry run: which offers would take ``spec``, and why the others would not."""
        return MatchExplanation.model_validate(
            self._json(
                "POST", "/v1/offers/match", json=spec.model_dump(mode="json", exclude_none=True)
            )
        )


_NOT_CHALLENGEABLE = {
    JobState.SUBMITTED: "it has not run yet",
    JobState.QUEUED: "it has not run yet",
    JobState.ASSIGNED: "it has not run yet",
    JobState.RUNNING: "it is still running; its result can be challenged once committed",
    JobState.DISPUTED: "it is already disputed and waits for the operator's ruling",
    JobState.SETTLED: "its challenge window has closed and the provider is paid",
    JobState.REFUNDED: "it ended without a result to dispute and your escrow was refunded",
    JobState.FAILED: "it ended without a result to dispute and your escrow was refunded",
    JobState.CANCELLED: "it was cancelled; what was not paid for came back to your deposit",
    JobState.EXPIRED: "it never ran and your escrow was refunded",
}


def _why_not_challengeable(job: JobView) -> str:
    """Why a job that is not COMMITTED cannot be challenged, in the job's own terms (the
    contract would only say the state is wrong)."""
    why = _NOT_CHALLENGEABLE.get(job.state, "")
    return (
        f"job {job.id} is {job.state.value}"
        + (f": {why}" if why else "")
        + "; only a COMMITTED result can be challenged, inside its challenge window"
    )


class ProviderClient(_BaseClient):
    """The provider daemon's client: heartbeats, assignments and job reports."""

    def heartbeat(self, beat: Heartbeat) -> HeartbeatAck:
        """Send inventory, telemetry and offers."""
        return HeartbeatAck.model_validate(
            self._json("POST", "/v1/provider/heartbeat", json=beat.model_dump(mode="json"))
        )

    def poll(self, wait: float = 25.0) -> list[Assignment]:
        """Long-poll for new assignments."""
        data = self._json(
            "GET",
            "/v1/provider/assignments",
            params={"wait": wait},
            timeout=httpx.Timeout(wait + 30.0, connect=5.0),
        )
        return AssignmentBatch.model_validate(data).assignments

    def started(self, job_id: str, container_id: str | None = None) -> JobView:
        """Acknowledge an assignment."""
        return JobView.model_validate(
            self._json(
                "POST",
                f"/v1/provider/jobs/{job_id}/started",
                json=StartedReport(container_id=container_id).model_dump(),
            )
        )

    def progress(self, job_id: str, progress: PreparationProgress) -> JobView:
        """Report how far the image pull of an assigned job has got (keeps the assignment
        alive while bytes move); :class:`Conflict` once the job is no longer ASSIGNED."""
        return JobView.model_validate(
            self._json(
                "POST",
                f"/v1/provider/jobs/{job_id}/progress",
                json=progress.model_dump(mode="json"),
            )
        )

    def append_logs(self, job_id: str, batch: LogAppend) -> LogAppendAck:
        """Send log chunks (idempotent by seq)."""
        return LogAppendAck.model_validate(
            self._json(
                "POST", f"/v1/provider/jobs/{job_id}/logs", json=batch.model_dump(mode="json")
            )
        )

    def upload_outputs(self, job_id: str, archive: Path, output_hash: str) -> OutputUploadAck:
        """Stream an output archive whose SHA-256 is ``output_hash``."""
        with archive.open("rb") as body:
            return OutputUploadAck.model_validate(
                self._json(
                    "PUT",
                    f"/v1/provider/jobs/{job_id}/outputs",
                    content=body,
                    headers={"X-Content-SHA256": output_hash, "Content-Type": "application/gzip"},
                )
            )

    def report_result(self, job_id: str, report: ResultReport) -> JobView:
        """Report a finished run."""
        return JobView.model_validate(
            self._json(
                "POST", f"/v1/provider/jobs/{job_id}/result", json=report.model_dump(mode="json")
            )
        )

    def report_failure(self, job_id: str, report: FailureReport) -> JobView:
        """Report that the job could not run."""
        return JobView.model_validate(
            self._json(
                "POST", f"/v1/provider/jobs/{job_id}/failure", json=report.model_dump(mode="json")
            )
        )

    def me(self) -> ProviderView:
        """This provider's own record: reputation, counters, earnings."""
        return ProviderView.model_validate(self._json("GET", "/v1/provider/me"))

    def job(self, job_id: str) -> JobView:
        """A job assigned to this provider."""
        return JobView.model_validate(self._json("GET", f"/v1/provider/jobs/{job_id}"))


class AdminClient(_BaseClient):
    """The operator's client (admin token)."""

    def providers(self, online: bool | None = None) -> list[ProviderView]:
        """Providers with inventory, telemetry and reputation."""
        params = {"online": online} if online is not None else {}
        rows = self._json("GET", "/v1/admin/providers", params=params)
        return [ProviderView.model_validate(row) for row in rows]

    def ban(self, provider_id: str, reason: str) -> ProviderView:
        """Ban a provider."""
        # model_construct: the protocol's field names, but the coordinator judges the values
        body = BanBody.model_construct(reason=reason).model_dump()
        return ProviderView.model_validate(
            self._json("POST", f"/v1/admin/providers/{provider_id}/ban", json=body)
        )

    def unban(self, provider_id: str) -> ProviderView:
        """Lift a ban."""
        return ProviderView.model_validate(
            self._json("POST", f"/v1/admin/providers/{provider_id}/unban")
        )

    def jobs(self, states: Iterable[JobState] = (), limit: int = 50) -> JobPage:
        """Every job."""
        return JobPage.model_validate(
            self._json(
                "GET", "/v1/admin/jobs", params={"state": [s.value for s in states], "limit": limit}
            )
        )

    def disputes(self) -> list[JobView]:
        """Jobs waiting for a ruling, oldest first."""
        return [JobView.model_validate(j) for j in self._json("GET", "/v1/admin/disputes")]

    def cancel(self, job_id: str) -> JobView:
        """Cancel any job."""
        return JobView.model_validate(self._json("POST", f"/v1/admin/jobs/{job_id}/cancel"))

    def resolve(self, job_id: str, provider_at_fault: bool, note: str = "") -> JobView:
        """Decide a dispute."""
        return JobView.model_validate(
            self._json(
                "POST",
                f"/v1/admin/jobs/{job_id}/resolve",
                json=ResolveBody.model_construct(
                    provider_at_fault=provider_at_fault, note=note
                ).model_dump(),
            )
        )

    def stats(self) -> MarketStats:
        """Marketplace statistics."""
        return MarketStats.model_validate(self._json("GET", "/v1/admin/stats"))

    def set_fee(self, fee_bps: int, burn_bps: int | None = None) -> ChainChange:
        """New fee terms on the market contract for jobs opened from now on (``burn_bps``
        left out keeps the burn share)."""
        body = FeeBody.model_construct(fee_bps=fee_bps, burn_bps=burn_bps)
        return ChainChange.model_validate(
            self._json("POST", "/v1/admin/fee", json=body.model_dump(exclude_none=True))
        )

    def set_paused(self, paused: bool) -> ChainChange:
        """Pause or resume opening jobs on the market contract."""
        body = PauseBody.model_construct(paused=paused).model_dump()
        return ChainChange.model_validate(self._json("POST", "/v1/admin/pause", json=body))
