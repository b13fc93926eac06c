"""The provider daemon: register, heartbeat, long-poll, run jobs, survive restarts.

Loops follow Prefect's workers: heartbeats and polls retry transient errors with jittered
backoff (the tenacity policies of :mod:`gpumarket.provider.retry`) and stop loudly on a 4xx.
SIGTERM stops taking work, lets running jobs finish for ``shutdown_grace_seconds`` and hands
the rest back to the queue.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import shutil
import threading
import time
from collections import Counter
from functools import partial
from pathlib import Path

from docker.models.containers import Container
from eth_account.signers.local import LocalAccount

from gpumarket import __version__
from gpumarket.errors import (
    AuthenticationFailed,
    GpumarketError,
    NotFound,
    PermissionDenied,
)
from gpumarket.protocol import (
    CPU_OFFER,
    Assignment,
    ChainInfo,
    FailureReport,
    GpuInfo,
    Heartbeat,
    HostResources,
    JobState,
    OfferAsk,
    Role,
)
from gpumarket.provider.assignments import load_assignment, recovered_assignment
from gpumarket.provider.claims import ClaimSigner
from gpumarket.provider.config import ProviderConfig
from gpumarket.provider.executor import LABEL_JOB, DockerExecutor
from gpumarket.provider.gpu import Inventory, NvmlInventory
from gpumarket.provider.retry import is_transient, policy, with_retry
from gpumarket.provider.runner import JobRunner
from gpumarket.sdk import ProviderClient, register_wallet

log = logging.getLogger(__name__)

BANNED_RETRY_SECONDS = 30.0


def host_memory_mb() -> int:
    """Total RAM from /proc/meminfo (0 when unknown)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    except OSError:
        pass
    return 0


class ProviderDaemon:
    """Offers this host's GPUs (or CPU) and runs what the coordinator assigns."""

    runner_class: type[JobRunner] = JobRunner
    """What runs each job on its thread (a test double may wrap the real runner)."""

    def __init__(
        self,
        config: ProviderConfig,
        account: LocalAccount,
        executor: DockerExecutor | None = None,
        inventory: NvmlInventory | None = None,
    ) -> None:
        self.config = config
        self.account = account
        self.inventory_source = inventory or NvmlInventory()
        self.inventory: Inventory = self.inventory_source.read()
        self.executor = executor or DockerExecutor(config)
        self.client: ProviderClient | None = None
        self.provider_id: str | None = None
        self.runners: dict[str, JobRunner] = {}
        self._lock = threading.Lock()
        self.stopping = threading.Event()
        self.cpu_tflops: float | None = None
        self.claims: ClaimSigner | None = None
        self.engine_problem: str | None = None
        self.held_back: list[str] = []
        self.banned = False
        """Why the coordinator matches no job here, as its last heartbeat answer said."""
        """Why the Docker engine did not answer at the last heartbeat (None: it did)."""

    # ------------------------------------------------------------ registration

    def benchmark(self, image: str) -> None:
        """Measure this host and advertise the results: each GPU's benchmarked TFLOPS (a GPU
        far below its spec is logged) and the CPU's, when no GPU was measured."""
        from gpumarket.provider.benchmark import run_benchmark

        try:
            results = run_benchmark(image, self.inventory.gpus, self.executor.docker)
        except Exception as exc:
            log.warning("benchmark in %s failed (%s); advertising theoretical figures", image, exc)
            return
        measured = {r.gpu_uuid: r for r in results if r.gpu_uuid}
        self.inventory.gpus = [
            gpu.model_copy(update={"benchmark_tflops": measured[gpu.uuid].achieved_tflops})
            if gpu.uuid in measured
            else gpu
            for gpu in self.inventory.gpus
        ]
        for result in results:
            if result.far_below_spec:
                log.warning(
                    "%s delivers %.1f of %.1f theoretical TFLOPS: far below its spec",
                    result.device,
                    result.achieved_tflops,
                    result.theoretical_tflops or 0,
                )
            if result.device == "cpu":
                self.cpu_tflops = result.achieved_tflops
        log.info(
            "benchmark: %s",
            ", ".join(f"{r.device} {r.achieved_tflops:.3f} TFLOPS" for r in results),
        )

    def _credential_path(self) -> Path:
        return self.config.work_dir / "credential.json"

    def connect(self) -> ProviderClient:
        """Reuse the saved API key for this wallet and coordinator, or register anew; learn
        whether the market settles on-chain (then every result carries a signed claim)."""
        client = self._connect()
        chain = with_retry(client.chain_info, "read the market's chain", stop=self.stopping)
        if chain is not None:
            self.claims = ClaimSigner(self.account, chain)
            log.info(
                "market settles on chain %s (contract %s); results are signed by %s",
                chain.chain_id,
                chain.market,
                self.account.address,
            )
            self._check_stake(chain)
        return client

    def _check_stake(self, chain: ChainInfo) -> None:
        """Say so at start when results could not be committed for lack of stake. The chain is
        read at ``GPUMARKET_CHAIN_RPC_URL`` when set (as the CLI does): the URL a coordinator
        advertises may not be reachable from this host, a compose network for one."""
        from gpumarket.settlement.wallet import MarketWallet

        rpc_url = os.environ.get("GPUMARKET_CHAIN_RPC_URL") or chain.rpc_url
        try:
            balances = MarketWallet(chain, self.account, rpc_url).balances()
        except Exception as exc:  # the chain is only advisory here: the coordinator decides
            log.warning("cannot read this wallet's stake from %s: %s", rpc_url, exc)
            return
        free = balances.stake - balances.locked_stake
        if free < chain.min_stake_micros:
            log.warning(
                "free stake %.6f is under the %.6f a result locks at least: results will be "
                "refused until you run `gpumarket provider stake AMOUNT`",
                free / 1e6,
                chain.min_stake_micros / 1e6,
            )
        elif chain.stake_multiple:
            log.info(
                "free stake %.6f backs results worth up to %.6f at once (each locks the larger "
                "of %.6f and %d x its amount until its window ends)",
                free / 1e6,
                free / chain.stake_multiple / 1e6,
                chain.min_stake_micros / 1e6,
                chain.stake_multiple,
            )

    def _connect(self) -> ProviderClient:
        path = self._credential_path()
        try:
            saved = json.loads(path.read_text())
            if (
                saved.get("coordinator") == self.config.coordinator_url
                and saved.get("address", "").lower() == self.account.address.lower()
            ):
                self.client = ProviderClient(self.config.coordinator_url, saved["api_key"])
                self.provider_id = saved["provider_id"]
                self.executor.provider_id = saved["provider_id"]
                return self.client
        except (FileNotFoundError, json.JSONDecodeError, KeyError):
            pass
        return self._register()

    def _register(self) -> ProviderClient:
        credential = register_wallet(
            self.config.coordinator_url, self.account, Role.PROVIDER, region=self.config.region
        )
        path = self._credential_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(
                {
                    "coordinator": self.config.coordinator_url,
                    "address": self.account.address,
                    "api_key": credential.api_key,
                    "provider_id": credential.account_id,
                },
                out,
            )
        self.client = ProviderClient(self.config.coordinator_url, credential.api_key)
        self.provider_id = credential.account_id
        self.executor.provider_id = credential.account_id
        log.info("registered as %s (wallet %s)", credential.account_id, self.account.address)
        return self.client

    # ------------------------------------------------------------ heartbeat

    def heartbeat_body(self) -> Heartbeat:
        """Inventory, telemetry, capacity, prices and running jobs, as the coordinator wants;
        not accepting work while stopping or while the Docker engine does not answer."""
        models = {gpu.model for gpu in self.inventory.gpus}
        offers = [
            OfferAsk(gpu_model=model, price_per_hour=price)
            for model, price in self.config.prices.items()
            if model in models
        ]
        if self.config.cpu_price_per_hour is not None:
            offers.append(
                OfferAsk(gpu_model=CPU_OFFER, price_per_hour=self.config.cpu_price_per_hour)
            )
        self.config.work_dir.mkdir(parents=True, exist_ok=True)
        with self._lock:
            running = [job_id for job_id, r in self.runners.items() if not r.released.is_set()]
        engine_problem = self.executor.engine_problem()
        if engine_problem != self.engine_problem:
            if engine_problem:
                log.warning(
                    "the Docker engine does not answer (%s): taking no jobs until it does",
                    engine_problem,
                )
            else:
                log.info("the Docker engine answers again: taking jobs")
            self.engine_problem = engine_problem
        return Heartbeat(
            gpus=self.inventory.gpus,
            telemetry=self.inventory_source.telemetry() if self.inventory.gpus else [],
            resources=HostResources(
                cpu_count=float(os.cpu_count() or 1),
                cpu_tflops=self.cpu_tflops,
                memory_mb=host_memory_mb(),
                disk_mb=shutil.disk_usage(self.config.work_dir).free // (1024 * 1024),
            ),
            offers=offers,
            region=self.config.region,
            running_jobs=running,
            version=__version__,
            accepting=not self.stopping.is_set() and engine_problem is None,
            allows_network=self.config.allow_network,
        )

    def beat(self) -> float:
        """Send one heartbeat, stop jobs the coordinator says to stop; returns the next delay."""
        assert self.client is not None
        ack = self.client.heartbeat(self.heartbeat_body())
        for job_id in ack.cancel_jobs:
            with self._lock:
                runner = self.runners.get(job_id)
            if runner is not None:
                log.info("coordinator says stop %s", job_id)
                runner.cancel()
        self._note_banned(ack.banned)
        self._note_held_back(ack.held_back)
        return ack.next_heartbeat_seconds

    def _note_banned(self, banned: bool, why: str = "") -> None:
        """Say once that the operator banned this provider (the heartbeat and the poll both
        learn it, every few seconds while it lasts), and once when the ban is lifted."""
        with self._lock:
            if banned == self.banned:
                return
            self.banned = banned
        if banned:
            log.error(
                "%s; running jobs go on, no new work until the operator lifts the ban "
                "(this is logged once)",
                why or "this provider is banned by the coordinator's operator",
            )
        else:
            log.info("the operator lifted the ban: taking work again")

    def _note_held_back(self, reasons: list[str]) -> None:
        """Say once why the coordinator stopped matching jobs here, and once when it matches
        them again: an owner otherwise sees only an idle daemon."""
        if reasons == self.held_back:
            return
        if reasons:
            hint = ""
            if any("stake" in reason for reason in reasons):
                hint = (
                    "; stake more with `gpumarket provider stake AMOUNT` (each result in its "
                    "challenge window locks its share) or wait for results to settle"
                )
            log.warning("the coordinator matches no job here: %s%s", "; ".join(reasons), hint)
        else:
            log.info("the coordinator matches jobs here again")
        self.held_back = reasons

    def _heartbeat_loop(self) -> None:
        beats = policy(
            "heartbeat", first_delay=1.0, max_delay=30.0, give_up_after=None, stop=self.stopping
        )
        delay = 0.0
        while not self.stopping.wait(delay):
            try:
                delay = beats(self.beat) * random.uniform(0.8, 1.2)  # noqa: S311 - jitter
            except AuthenticationFailed:
                log.warning("the coordinator no longer knows our key; registering again")
                self._register()
                delay = 0
            except GpumarketError as exc:
                if is_transient(exc):  # given up on only once the daemon stops
                    continue
                log.error("coordinator refused the heartbeat: %s", exc.message)
                delay = 30

    # ------------------------------------------------------------ jobs

    def check_gpus(self, assignment: Assignment) -> str | None:
        """The GPUs about to be used must still be the advertised ones (UUID and model)."""
        if not assignment.gpu_uuids:
            return None
        advertised = {gpu.uuid: gpu for gpu in self.inventory.gpus}
        now = {gpu.uuid: gpu for gpu in self.inventory_source.read().gpus}
        for uuid in assignment.gpu_uuids:
            before: GpuInfo | None = advertised.get(uuid)
            current: GpuInfo | None = now.get(uuid)
            if before is None:
                return f"GPU {uuid} was never advertised by this provider"
            if current is None:
                return f"GPU {uuid} ({before.name}) is no longer present on this host"
            if current.model != before.model:
                return f"GPU {uuid} is now a {current.name}, advertised as {before.name}"
        return None

    def _finished(self, job_id: str) -> None:
        with self._lock:
            self.runners.pop(job_id, None)

    def dispatch(self, assignment: Assignment) -> None:
        """Start a runner, or give the job back when this host is full or stopping. A job
        whose outcome has been reported no longer counts (its container has ended and the
        coordinator freed its slot; only its cleanup is left). Giving a job back for want of
        room is "busy", not a fault: the coordinator offers it again, here included."""
        assert self.client is not None
        with self._lock:
            active = [r for r in self.runners.values() if not r.released.is_set()]
            busy = {uuid for r in active for uuid in r.assignment.gpu_uuids}
            full = len(active) >= self.config.max_concurrent_jobs
            clash = busy & set(assignment.gpu_uuids)
            if assignment.job_id in self.runners:
                return
            if not (full or clash or self.stopping.is_set()):
                self._start_runner(assignment)
                return
        reason = (
            "provider is shutting down"
            if self.stopping.is_set()
            else f"GPUs {sorted(clash)} are busy"
            if clash
            else "provider is at capacity"
        )
        log.info("%s: given back: %s", assignment.job_id, reason)
        self.client.report_failure(
            assignment.job_id, FailureReport(reason=reason, retryable=True, busy=True)
        )

    def reconcile(self) -> None:
        """After a restart: re-attach to containers still running, report those that ended
        while the daemon was down, forget containers of jobs that are no longer ours, and
        remove the work folders no container is left for."""
        assert self.client is not None
        self._reattach()
        with self._lock:
            keep = set(self.runners)
        for job_id in self.executor.remove_stale_work(keep):
            log.info("removed the work folder of %s (no container left for it)", job_id)

    def _reattach(self) -> None:
        assert self.client is not None
        for container in self.executor.labelled_containers():
            job_id = container.labels.get(LABEL_JOB, "")
            try:  # an unreachable coordinator is waited for; only "not yours" removes it
                job = with_retry(partial(self.client.job, job_id), f"look up {job_id}")
            except (NotFound, PermissionDenied) as exc:
                log.info("removing container of %s: %s", job_id, exc.message)
                self.executor.remove(job_id)
                continue
            if job.state not in (JobState.ASSIGNED, JobState.RUNNING):
                log.info("removing container of %s (%s)", job_id, job.state.value)
                self.executor.remove(job_id)
                continue
            saved = load_assignment(self.executor.job_dir(job_id), job_id)
            assignment = recovered_assignment(job, saved)
            if self.claims is not None and assignment.chain_job_id is None:
                log.warning("%s: no on-chain id known for it: its result cannot be claimed", job_id)
            log.info("re-attaching to %s (container %s)", job_id, container.status)
            with self._lock:
                self._start_runner(assignment, existing=container)

    def _start_runner(self, assignment: Assignment, existing: Container | None = None) -> None:
        """Run ``assignment`` on its own thread (the caller holds ``self._lock``)."""
        assert self.client is not None
        runner = self.runner_class(
            assignment,
            self.executor,
            self.client,
            self.config,
            self.check_gpus,
            self._finished,
            existing=existing,
            claims=self.claims,
        )
        self.runners[assignment.job_id] = runner
        runner.start()

    # ------------------------------------------------------------ main loop

    def pricing_problems(self) -> list[str]:
        """What the owner most likely meant to offer but does not: GPU models found here with
        no price (they are not offered at all), and prices for models this host lacks."""
        found = Counter(gpu.model for gpu in self.inventory.gpus)
        problems = [
            f"{count} {model} GPU(s) have no price, so they are not offered: set one with "
            f"--price {model}=PRICE or under [prices] in the config (per GPU-hour)"
            for model, count in found.items()
            if model not in self.config.prices
        ]
        problems += [
            f"a price is set for {model}, but this host has no such GPU"
            + (f" (it has {', '.join(sorted(found))})" if found else "")
            for model in self.config.prices
            if model not in found
        ]
        return problems

    def run(self) -> None:
        """Serve until :meth:`stop` (or SIGTERM through the CLI)."""
        if self.inventory.reason_if_empty:
            log.warning(self.inventory.reason_if_empty)
        else:
            log.info(
                "inventory: %s", ", ".join(f"{g.name} ({g.uuid})" for g in self.inventory.gpus)
            )
        for problem in self.pricing_problems():
            log.warning(problem)
        if self.config.benchmark_image:
            self.benchmark(self.config.benchmark_image)
        try:
            client = with_retry(
                self.connect, "connect to the coordinator", give_up_after=600, stop=self.stopping
            )
        except GpumarketError as exc:
            if not self.stopping.is_set() or not is_transient(exc):
                raise
            log.info("stopped before reaching the coordinator")
            return
        self.reconcile()
        log.info(
            "serving %s as %s: up to %d job(s) at once",
            self.config.coordinator_url,
            self.provider_id,
            self.config.max_concurrent_jobs,
        )
        heartbeat = threading.Thread(target=self._heartbeat_loop, name="heartbeat", daemon=True)
        heartbeat.start()
        polls = policy(
            "poll", first_delay=1.0, max_delay=30.0, give_up_after=None, stop=self.stopping
        )
        while not self.stopping.is_set():
            try:
                assignments = polls(client.poll, wait=self.config.poll_wait_seconds)
                self._note_banned(False)
            except AuthenticationFailed:
                log.warning("the coordinator no longer knows our key; registering again")
                client = self._register()
                continue
            except PermissionDenied as exc:  # banned: keep running jobs, wait for an unban
                self._note_banned(True, exc.message)
                self.stopping.wait(BANNED_RETRY_SECONDS)
                continue
            except GpumarketError as exc:
                if not is_transient(exc):  # a refusal stops the daemon, loudly
                    raise
                continue  # given up on only once the daemon stops
            with self._lock:
                new = [a for a in assignments if a.job_id not in self.runners]
            for assignment in new:
                self.dispatch(assignment)
            if assignments and not new:  # still being acknowledged: do not spin on them
                self.stopping.wait(0.5)
        self._drain()
        heartbeat.join(5)

    def stop(self) -> None:
        """Stop taking work. A heartbeat tells the coordinator at once (from a thread: this
        runs in a signal handler), which also ends the current long-poll early; running jobs
        then get ``shutdown_grace_seconds`` to finish."""
        if self.stopping.is_set():
            return
        self.stopping.set()
        log.info(  # no lock here: the signal may have interrupted its holder
            "stopping: no new jobs; %d running job(s) get %.0fs to finish",
            len(self.runners),
            self.config.shutdown_grace_seconds,
        )
        threading.Thread(target=self._announce_draining, name="draining", daemon=True).start()

    def _announce_draining(self) -> None:
        if self.client is None:  # not connected yet: nothing to tell
            return
        with contextlib.suppress(GpumarketError):
            self.beat()

    def _drain(self) -> None:
        with contextlib.suppress(GpumarketError):
            self.beat()  # tell the coordinator we no longer accept work
        deadline = time.monotonic() + self.config.shutdown_grace_seconds
        while time.monotonic() < deadline:
            with self._lock:
                if not self.runners:
                    return
            time.sleep(0.2)
        with self._lock:
            left = list(self.runners.values())
        for runner in left:
            log.warning("handing %s back: shutdown grace period is over", runner.job_id)
            runner.hand_back()
        for runner in left:
            runner.join(self.config.stop_grace_seconds + 30)
