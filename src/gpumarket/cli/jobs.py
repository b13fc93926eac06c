"""``gpumarket job ...`` and ``gpumarket login``: what a developer does from a terminal."""

from __future__ import annotations

import contextlib
import json
import shlex
import threading
import time
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.console import Group
from rich.live import Live
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    SpinnerColumn,
    Task,
    TextColumn,
    TransferSpeedColumn,
)
from rich.spinner import Spinner
from rich.text import Text

from gpumarket.cli.consoles import console
from gpumarket.cli.consoles import err_console as err
from gpumarket.cli.offers import AllowUnknownGpuOption, refuse_unknown_gpus
from gpumarket.cli.output import JsonOption, emit, or_dash, print_listing
from gpumarket.cli.profile import Profile, load_profile, require_key
from gpumarket.errors import GpumarketError, InvalidRequest
from gpumarket.protocol import (
    FINISHED_STATES,
    JobSpec,
    JobState,
    JobView,
    MatchExplanation,
    VerificationMode,
)
from gpumarket.sdk.client import PaymentPending

app = typer.Typer(help="Submit and follow jobs.", no_args_is_help=True)

CoordinatorOption = Annotated[
    str | None,
    typer.Option("--coordinator", envvar="GPUMARKET_COORDINATOR", help="Coordinator URL."),
]
PASSWORD_ENV = "GPUMARKET_WALLET_PASSWORD"  # noqa: S105 - the name of a variable


def client(coordinator: str | None) -> Any:
    """An SDK client for the effective profile."""
    from gpumarket.sdk import Client

    profile = load_profile(coordinator)
    return Client(profile.coordinator, require_key(profile))


def login(
    coordinator: Annotated[str, typer.Option(help="Coordinator URL.")] = "http://127.0.0.1:8000",
    wallet: Annotated[Path, typer.Option(help="Keystore (created if absent).")] = Path(
        "~/.gpumarket/wallet.json"
    ),
    password_env: Annotated[
        str,
        typer.Option(
            help="Variable holding the keystore password (asked on the terminal when unset)."
        ),
    ] = PASSWORD_ENV,
    as_json: JsonOption = False,
) -> None:
    """Sign the coordinator's challenge with your wallet and save the API key."""
    from gpumarket.cli.chainops import wallet_password
    from gpumarket.keystore import load_or_create_wallet
    from gpumarket.protocol import Role
    from gpumarket.sdk import register_wallet

    path = wallet.expanduser()
    password = wallet_password(password_env, path, confirm=not path.exists())
    account, created = load_or_create_wallet(path, password, password_env)
    credential = register_wallet(coordinator, account, Role.DEVELOPER)
    saved = Profile(coordinator, credential.api_key, credential.address, str(wallet)).save()
    note = " (new wallet)" if created else ""
    emit(
        as_json,
        {
            "address": credential.address,
            "coordinator": coordinator,
            "wallet": str(path),
            "created_wallet": created,
            "profile": str(saved),
        },
        f"logged in as {credential.address}{note}; profile saved to {saved}",
    )


def _spec_from(
    spec_file: Path | None,
    image: str | None,
    command: str | None,
    gpu: str | None,
    cpu: float | None,
    memory: str | None,
    max_price: str | None,
    max_duration: int | None,
    region: str | None,
    env: list[str] | None,
    name: str | None,
    network: bool,
    inputs: list[str] | None = None,
    verification: dict[str, object] | None = None,
) -> JobSpec:
    data: dict[str, Any] = {}
    if spec_file is not None:
        try:
            loaded = yaml.safe_load(spec_file.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise InvalidRequest(f"cannot read {spec_file}: {exc}") from exc
        if not isinstance(loaded, dict):
            raise InvalidRequest(f"{spec_file} must hold a mapping of job spec fields")
        data.update(loaded)
        if isinstance(data.get("command"), str):  # as `-c` takes it: split as a shell would
            data["command"] = _split_command(data["command"], f"{spec_file}: command")
        if isinstance(data.get("inputs"), list):
            data["inputs"] = _with_local_files(data["inputs"], spec_file.parent)
    from gpumarket.sdk.inputs import parse_input_option

    for item in inputs or []:
        local, target = parse_input_option(item)
        data.setdefault("inputs", []).extend(_inputs_from(local, target))
    resources: dict[str, Any] = dict(data.get("resources") or {})
    for key, value in (("gpu", gpu), ("cpu", cpu), ("memory", memory)):
        if value is not None:
            resources[key] = value
    if resources:
        data["resources"] = resources
    scalars: dict[str, object] = {
        "image": image,
        "command": _split_command(command, "--command") if command else None,
        "max_price_per_hour": max_price,
        "max_duration_seconds": max_duration,
        "region": region,
        "name": name,
        **(verification or {}),
    }
    data.update({key: value for key, value in scalars.items() if value is not None})
    if network:
        data["network"] = True
    for item in env or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise InvalidRequest(f"--env {item!r}: write KEY=VALUE")
        data.setdefault("env", {})[key] = value
    from pydantic import ValidationError

    try:
        return JobSpec.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'spec'}: "
            f"{e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors()
        )
        raise InvalidRequest(f"invalid job spec: {problems}") from exc


def _split_command(line: str, where: str) -> list[str]:
    """A command line split into arguments as a shell would (quotes group, nothing expands),
    for ``-c`` and for a YAML spec whose ``command`` is one string rather than a list."""
    try:
        return shlex.split(line)
    except ValueError as exc:
        raise InvalidRequest(f"{where}: cannot split {line!r} into arguments: {exc}") from exc


def _with_local_files(entries: list[Any], base: Path) -> list[Any]:
    """A YAML spec's inputs with each ``file: LOCAL`` entry (relative to the spec's folder)
    replaced by the inline inputs that carry it (at its ``path``, default its own name)."""
    expanded: list[Any] = []
    for entry in entries:
        if isinstance(entry, dict) and "file" in entry:
            extra = set(entry) - {"file", "path"}
            if extra:
                raise InvalidRequest(
                    f"input {entry['file']!r}: a file entry takes only file and path, "
                    f"not {', '.join(sorted(extra))}"
                )
            local = Path(str(entry["file"])).expanduser()
            target = entry.get("path")
            expanded.extend(_inputs_from(base / local, None if target is None else str(target)))
        else:
            expanded.append(entry)
    return expanded


def _inputs_from(local: Path, target: str | None) -> list[dict[str, Any]]:
    """The inline inputs that carry a local file or folder, as spec data."""
    from gpumarket.sdk import local_inputs

    return [f.model_dump(mode="json", exclude_none=True) for f in local_inputs(local, target)]


@app.command()
def submit(
    spec_file: Annotated[Path | None, typer.Argument(help="A YAML job spec.")] = None,
    image: Annotated[str | None, typer.Option(help="Container image.")] = None,
    command: Annotated[
        str | None,
        typer.Option(
            "--command",
            "-c",
            help='Command line, split as a shell would: "python train.py --lr 3e-4".',
        ),
    ] = None,
    gpu: Annotated[str | None, typer.Option(help='GPUs, e.g. "RTX4090:24GB..:1".')] = None,
    cpu: Annotated[float | None, typer.Option(help="CPUs.")] = None,
    memory: Annotated[str | None, typer.Option(help='RAM, e.g. "16GB".')] = None,
    max_price: Annotated[str | None, typer.Option(help="Most you pay per GPU-hour.")] = None,
    max_duration: Annotated[int | None, typer.Option(help="Seconds.")] = None,
    region: Annotated[str | None, typer.Option(help="Region.")] = None,
    env: Annotated[list[str] | None, typer.Option(help="KEY=VALUE, repeatable.")] = None,
    name: Annotated[str | None, typer.Option(help="A label.")] = None,
    network: Annotated[bool, typer.Option(help="Ask for network access.")] = False,
    inputs: Annotated[
        list[str] | None,
        typer.Option(
            "--input",
            "-i",
            help="A local file or folder sent with the job, read-only under /inputs: LOCAL, "
            "or LOCAL:NAME for /inputs/NAME (repeatable; 1 MiB in all, larger inputs by url).",
        ),
    ] = None,
    verification: Annotated[
        VerificationMode | None,
        typer.Option(
            help="optimistic (default): the result stands unless challenged in its window; "
            "sampled: re-run on another provider with a probability; redundant: run by "
            "--redundancy providers, the majority's result stands. The last two need "
            "--deterministic."
        ),
    ] = None,
    deterministic: Annotated[
        bool,
        typer.Option(
            "--deterministic",
            help="The same inputs always write the same output files (runs are then compared "
            "byte for byte and a provider whose result differs is slashed).",
        ),
    ] = False,
    redundancy: Annotated[
        int | None, typer.Option(help="With --verification redundant: how many runs (2-5).")
    ] = None,
    min_score: Annotated[
        float | None,
        typer.Option(help="Only providers whose public score is at least this (0-1)."),
    ] = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Stream the log.")] = False,
    allow_unknown_gpu: AllowUnknownGpuOption = False,
    coordinator: CoordinatorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Submit a job from a YAML spec and/or flags (flags win)."""
    checks: dict[str, object] = {
        key: value
        for key, value in (
            ("verification", verification.value if verification else None),
            ("deterministic", True if deterministic else None),
            ("redundancy", redundancy),
            ("min_score", min_score),
        )
        if value is not None
    }
    spec = _spec_from(
        spec_file,
        image,
        command,
        gpu,
        cpu,
        memory,
        max_price,
        max_duration,
        region,
        env,
        name,
        network,
        inputs,
        checks,
    )
    sdk = client(coordinator)
    refuse_unknown_gpus(spec, sdk, allow_unknown_gpu)
    with warnings.catch_warnings():  # the CLI signs the order itself, just below
        warnings.simplefilter("ignore", PaymentPending)
        job = sdk.submit(spec)
    if job.payment is not None:
        job = _pay(sdk, job, spec)
    if as_json:
        typer.echo(job.model_dump_json(indent=2))
    else:
        console.print(Text.assemble("submitted ", (job.id, "bold"), f" ({job.state.value})"))
    if follow:
        _follow(sdk, job.id)


def _developer_wallet() -> Any:
    from gpumarket.cli.chainops import open_wallet

    return open_wallet(load_profile().keystore(), PASSWORD_ENV)


def _pay(sdk: Any, job: JobView, spec: JobSpec | None = None) -> JobView:
    """Sign the job's order with the developer's wallet: the escrow opens and it is queued."""
    from gpumarket.protocol import from_micros

    assert job.payment is not None
    err.print(
        f"{job.id}: signing an order for at most {from_micros(job.payment.max_payment_micros)} "
        f"(escrowed from your deposit; the unused part comes back)"
    )
    paid: JobView = sdk.pay(job, _developer_wallet(), spec)
    return paid


@app.command()
def pay(job_id: str, coordinator: CoordinatorOption = None, as_json: JsonOption = False) -> None:
    """Sign a SUBMITTED job's order again (after a deposit, when the first was refused)."""
    sdk = client(coordinator)
    job = _pay(sdk, sdk.get(job_id, explain=False))
    if as_json:
        typer.echo(job.model_dump_json(indent=2))
    else:
        console.print(f"{job.id}: {job.state.value}")


_WAITING = (JobState.SUBMITTED, JobState.QUEUED, JobState.ASSIGNED)
_WITH_RESULT = (JobState.COMMITTED, JobState.DISPUTED, JobState.SETTLED)
"""Finished states in which the job's run produced a result (exit status 0 for scripts)."""


class _PulledBytes(DownloadColumn):
    """Bytes fetched of the image's known size; blank while no pull is going on."""

    def render(self, task: Task) -> Text:
        """The download figures of a pulling task, nothing for a waiting one."""
        return super().render(task) if task.fields.get("pulling") else Text("")


EXPLAIN_SECONDS = 5.0
"""How often a followed job that is still queued asks the coordinator why (a dry-run match)."""


# constraint names (the keys of a match explanation's summary) that say little on their own
CONSTRAINT_WORDS = {
    "excluded": "already failed this job",
    "online": "offline",
    "accepting": "not taking jobs",
}


def _waiting_reason(why: MatchExplanation) -> str:
    """Why a queued job has no provider yet, in one line: none online, none fits (and which
    constraints they fail), or some fit and one has yet to take it."""
    online = why.providers_considered
    if online == 0:
        return "no provider is online"
    if why.matches:
        return f"{len(why.matches)} of {online} online provider(s) fit; waiting for one to take it"
    failing = ", ".join(
        f"{CONSTRAINT_WORDS.get(name, name)} {count}" for name, count in why.summary.items()
    )
    return f"none of {online} online provider(s) fits (failing: {failing})"


def _wait_for_start(sdk: Any, job_id: str) -> None:
    """Until a provider starts the job: its state on a spinner, why it waits while queued
    (refreshed every EXPLAIN_SECONDS) and, while the provider pulls the image, a bar of the
    bytes fetched (of the layer sizes known so far). Without a terminal, one line per change
    instead."""
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        _PulledBytes(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    ) as bar:
        task = bar.add_task(f"{job_id}: waiting for a provider", total=None, pulling=False)
        mode: tuple[JobState, bool, str] | None = None
        explained_at = float("-inf")
        reason = ""
        while True:
            explain = time.monotonic() - explained_at >= EXPLAIN_SECONDS
            job = sdk.get(job_id, explain=explain)
            if job.state not in _WAITING:
                break
            if explain:
                explained_at = time.monotonic()
                reason = _waiting_reason(job.why_no_match) if job.why_no_match else ""
            if job.state != JobState.QUEUED:
                reason = ""
            pull = job.progress
            now = (job.state, pull is not None, reason)
            if now != mode:  # a fresh task: rich cannot turn a sized bar back into a pulse
                mode = now
                bar.remove_task(task)
                what = f"pulling {pull.detail}" if pull is not None else job.state.value
                if reason:
                    what += f": {reason}"
                task = bar.add_task(f"{job_id}: {what}", total=None, pulling=pull is not None)
                if not err.is_terminal:
                    err.print(f"{job_id}: {what}")
            if pull is not None:
                bar.update(
                    task,
                    description=f"{job_id}: pulling {pull.detail}",
                    completed=pull.done_bytes,
                    total=pull.total_bytes,
                )
            time.sleep(0.5)


STATUS_SECONDS = 1.0
"""How often the status line under a followed log is refreshed."""


def _status_line(job: JobView) -> str:
    """What a developer following a job sees under its log: state, provider, time, price
    (not the job's id, which the submit printed: the line fits 80 columns)."""
    parts = [job.state.value]
    if job.provider_id:
        parts.append(f"on {job.provider_id}")
    if job.started_at is not None:
        end = job.finished_at or datetime.now(UTC)
        seconds = max(0, int((end - job.started_at).total_seconds()))
        parts.append(f"for {seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}")
    if job.price_per_hour is not None:
        parts.append(f"at {job.price_per_hour}/h")
    return " ".join(parts)


_STYLES = {"stderr": "red", "system": "dim"}


class _LiveTail:
    """The live area under a followed log in a terminal: the line a stream is still writing
    (a progress bar redrawn with carriage returns shows there as a terminal would show it) and
    the status line with a spinner. Finished lines are printed above it and stay."""

    def __init__(self) -> None:
        self.partial: dict[str, str] = {}
        self.last_stream = "stdout"
        self.spinner = Spinner("dots", text="RUNNING")

    def __rich__(self) -> Group:
        shown = self.partial.get(self.last_stream, "").rsplit("\r", 1)[-1]
        tail = [Text(shown, style=_STYLES.get(self.last_stream, ""))] if shown else []
        return Group(*tail, self.spinner)

    def feed(self, stream: str, data: str) -> list[str]:
        """Take a chunk; return the lines it finished, as a terminal would leave them."""
        *done, rest = (self.partial.pop(stream, "") + data).split("\n")
        if rest:
            self.partial[stream] = rest
        self.last_stream = stream
        return [line.rsplit("\r", 1)[-1] for line in done]


def _stream_logs(sdk: Any, job_id: str) -> None:
    """Print the job's log as it comes. In a terminal, a status line (state, provider, time,
    price; refreshed every STATUS_SECONDS) stays under it, with the line being written; without
    one the log is passed through untouched."""
    if not console.is_terminal:
        for line in sdk.follow_logs(job_id):
            console.print(line.data, end="", highlight=False)
        return
    tail = _LiveTail()
    done = threading.Event()

    def refresh() -> None:
        while not done.wait(STATUS_SECONDS):
            with contextlib.suppress(GpumarketError):  # a missed refresh is harmless
                tail.spinner.update(text=_status_line(sdk.get(job_id, explain=False)))

    poller = threading.Thread(target=refresh, daemon=True, name="status-line")
    with Live(tail, console=console, transient=True, redirect_stdout=False, redirect_stderr=False):
        poller.start()
        try:
            for chunk in sdk.follow_logs(job_id):
                for finished in tail.feed(chunk.stream, chunk.data):
                    style = _STYLES.get(chunk.stream, "")
                    console.print(finished, style=style, highlight=False)
        finally:
            done.set()
    for stream, rest in tail.partial.items():  # output that never ended its last line
        console.print(rest.rsplit("\r", 1)[-1], style=_STYLES.get(stream, ""))


@contextlib.contextmanager
def _detached_on_interrupt(job_id: str) -> Iterator[None]:
    """Ctrl-C while following a job stops the following, not the job: say so and how to come
    back, and exit 130 as an interrupted command does."""
    try:
        yield
    except KeyboardInterrupt:
        err.print(
            f"\nstopped following {job_id}; the job goes on: `gpumarket job logs {job_id} -f` "
            f"follows it again, `gpumarket job cancel {job_id}` stops it",
            highlight=False,
        )
        raise typer.Exit(130) from None


def _cost(job: JobView) -> str | None:
    """What the job cost the developer, for display: a REFUNDED job (a dispute the provider
    lost) cost nothing, whatever its run was priced at before the ruling."""
    if job.state is JobState.REFUNDED:
        return "0 (refunded)"
    return None if job.cost is None else str(job.cost)


def _ending(job: JobView) -> str:
    """How a job's run ended, in one line: its state, and its exit code and cost when it has
    them (a job that never ran has neither)."""
    parts = [f"{job.id}: {job.state.value}"]
    if job.exit_code is not None:
        parts.append(f"exit code {job.exit_code}")
    cost = _cost(job)
    if cost is not None:
        parts.append(f"cost {cost}")
    return ", ".join(parts)


def _follow(sdk: Any, job_id: str) -> None:
    """Wait, stream, then say how it ended. Like ``docker run``, the command's exit status is
    the container's when it ran and failed, and 1 when the job ended without a result."""
    with _detached_on_interrupt(job_id):
        _wait_for_start(sdk, job_id)
        _stream_logs(sdk, job_id)
    final = sdk.get(job_id, explain=False)
    err.print(_ending(final))
    if final.failure_reason:
        err.print(f"{job_id}: {final.failure_reason}", highlight=False)
    if final.state not in _WITH_RESULT:
        raise typer.Exit(1)
    if final.exit_code:
        raise typer.Exit(min(max(final.exit_code, 1), 255))


def _print_jobs(jobs: list[JobView]) -> None:
    print_listing(
        ("id", "state", "image", "provider", "price/h", "cost", "created"),
        (
            (
                j.id,
                j.state.value,
                j.spec.image,
                j.provider_id or "-",
                or_dash(j.price_per_hour),
                or_dash(_cost(j)),
                j.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            )
            for j in jobs
        ),
        keys=("id", "provider"),
    )


@app.command("list")
def list_jobs(
    state: Annotated[list[JobState] | None, typer.Option(help="Filter, repeatable.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=200, help="Page size.")] = 50,
    cursor: Annotated[
        str | None, typer.Option(help="Where the next page starts (printed under a full page).")
    ] = None,
    coordinator: CoordinatorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Your jobs, newest first, a page at a time."""
    page = client(coordinator).jobs(state or [], limit=limit, cursor=cursor)
    if as_json:
        typer.echo(page.model_dump_json(indent=2))
        return
    _print_jobs(page.items)
    if page.next_cursor:
        err.print(
            f"more: gpumarket job list --cursor {page.next_cursor}"
            + (f" --limit {limit}" if limit != 50 else ""),
            highlight=False,
        )


@app.command()
def show(job_id: str, coordinator: CoordinatorOption = None, as_json: JsonOption = False) -> None:
    """One job; a queued one says why no provider has taken it."""
    job = client(coordinator).get(job_id)
    if as_json:
        typer.echo(job.model_dump_json(indent=2))
        return
    _print_jobs([job])
    if job.failure_reason:
        console.print(f"failure: {job.failure_reason}")
    if job.challenge_deadline is not None:
        console.print(_challenge_line(job), highlight=False)
    for step in job.chain:
        # a step the coordinator learnt of by its hash alone (the developer's own challenge)
        block = f" (block {step.block})" if step.block is not None else ""
        console.print(f"on-chain {step.step:<9} {step.tx_hash}{block}", highlight=False)
    if job.receipt is not None:
        r = job.receipt
        console.print(
            f"paid to provider {r.paid or 0}, fee {r.fee or 0} (burned {r.burned or 0}), "
            f"refunded {r.refund or 0}"
        )
    for line in _verification_lines(job):
        console.print(line, highlight=False)
    if job.why_no_match is not None:
        console.print(f"waiting: {_waiting_reason(job.why_no_match)}")


def _verification_lines(job: JobView) -> list[str]:
    """A sampled job's verification (its draw, where it stands, its premium and its runs), or
    what a verification run checks."""
    if job.verifies_job_id is not None:
        return [f"verification run: the market re-runs {job.verifies_job_id} on this provider"]
    if job.verification is None:
        return []
    rate = f" (drawn with p = {job.sampling_rate:.3f})" if job.sampling_rate is not None else ""
    lines = [f"verification: {job.verification.value}{rate}"]
    if job.verification_premium is not None:
        lines.append(f"verification premium: {job.verification_premium} (to the pool)")
    if job.output_digest:
        lines.append(f"outputs digest: {job.output_digest}")
    if job.verification_runs:
        lines.append("verification runs: " + ", ".join(job.verification_runs))
    return lines


def _challenge_line(job: JobView, now: datetime | None = None) -> str:
    """When the job's challenge window closes (or closed), in local time, and while it is open
    how long is left and how to use it."""
    assert job.challenge_deadline is not None
    now = now or datetime.now(UTC)
    deadline = job.challenge_deadline
    if deadline.tzinfo is None:
        deadline = deadline.replace(tzinfo=UTC)
    at = f"{deadline.astimezone():%Y-%m-%d %H:%M:%S %Z}"
    left = int((deadline - now).total_seconds())
    if job.state is not JobState.COMMITTED or left <= 0:
        return f"challenge window: closed at {at}"
    hours, rest = divmod(left, 3600)
    wait = f"{hours} h {rest // 60} min" if hours else f"{rest // 60} min {rest % 60} s"
    return (
        f"challenge window: open until {at} ({wait} left; "
        f"`gpumarket job challenge {job.id} --reason ...`)"
    )


@app.command()
def events(job_id: str, coordinator: CoordinatorOption = None, as_json: JsonOption = False) -> None:
    """The job's history with reasons: its lifecycle states, on an on-chain market where its
    money stands (``money`` lines, with the transaction, block and gas of each step), and for
    a sampled job each step of its verification by re-execution (``verify`` lines)."""
    history = client(coordinator).events(job_id)
    if as_json:
        typer.echo(json.dumps([e.model_dump(mode="json") for e in history], indent=2))
        return
    for event in history:
        if event.kind == "chain":
            tx = ""
            if event.tx_hash:
                gas = f", gas {event.gas_used:,}" if event.gas_used is not None else ""
                block = f"block {event.block}" if event.block is not None else "block ?"
                tx = f" [{event.tx_hash[:10]}… {block}{gas}]"
            state = f"money {event.to_state.value}"
            console.print(f"{event.at:%H:%M:%S} {state:<16} {event.reason}{tx}", highlight=False)
        elif event.kind == "verify":
            state = f"verify {event.to_state.value}"
            console.print(f"{event.at:%H:%M:%S} {state:<16} {event.reason}", highlight=False)
        else:
            console.print(f"{event.at:%H:%M:%S} {event.to_state.value:<16} {event.reason}")


@app.command()
def logs(
    job_id: str,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep streaming.")] = False,
    coordinator: CoordinatorOption = None,
    as_json: Annotated[
        bool,
        typer.Option("--json", help="One JSON object per chunk (seq, stream, data, at)."),
    ] = False,
) -> None:
    """The job's output."""
    sdk = client(coordinator)
    lines = sdk.follow_logs(job_id) if follow else sdk.logs(job_id, limit=10_000)
    with _detached_on_interrupt(job_id):
        for line in lines:
            if as_json:
                typer.echo(line.model_dump_json())
            else:
                typer.echo(line.data, nl=False)


@app.command()
def wait(
    job_id: str,
    state: Annotated[
        list[JobState] | None,
        typer.Option(help="Wait for this state instead (repeatable)."),
    ] = None,
    timeout: Annotated[
        float | None, typer.Option(help="Give up after this many seconds (exit status 1).")
    ] = None,
    coordinator: CoordinatorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Block until the job's run is over (or it reaches --state); for scripts.

    Exit status 0 when it ended with a result (COMMITTED, DISPUTED, SETTLED) or reached
    --state; 1 when it failed, was cancelled or expired, or the timeout passed."""
    job = client(coordinator).wait(job_id, state or FINISHED_STATES, timeout)
    emit(as_json, job, _ending(job))
    if not state and job.state not in _WITH_RESULT:
        raise typer.Exit(1)


@app.command()
def cancel(job_id: str, coordinator: CoordinatorOption = None, as_json: JsonOption = False) -> None:
    """Cancel a job that has not finished."""
    job = client(coordinator).cancel(job_id)
    emit(as_json, job, f"{job.id}: {job.state.value}")


@app.command()
def outputs(
    job_id: str,
    dest: Annotated[
        Path | None, typer.Option(help="Archive file to write [default: JOB_ID-outputs.tar.gz].")
    ] = None,
    extract: Annotated[
        Path | None,
        typer.Option(
            help="Unpack the outputs into this folder (keeping the archive only with --dest). "
            "Paths that would land outside it, links out and device files are refused."
        ),
    ] = None,
    coordinator: CoordinatorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Download the job's outputs (a tar.gz), and with --extract unpack them."""
    from gpumarket.sdk import extract_outputs

    target = dest or Path(f"{job_id}-outputs.tar.gz")
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=err,
        transient=True,
    ) as bar:
        task = bar.add_task(f"downloading {target.name}", total=None)
        client(coordinator).download_outputs(
            job_id, target, lambda done, total: bar.update(task, completed=done, total=total)
        )
    size = target.stat().st_size
    if extract is None:
        emit(as_json, {"path": str(target), "bytes": size}, f"saved {target} ({size} bytes)")
        return
    try:
        files = extract_outputs(target, extract)
    finally:
        if dest is None:
            target.unlink(missing_ok=True)
    listed = "".join(f"\n  {name}" for name in files)
    emit(
        as_json,
        {
            "folder": str(extract),
            "files": [str(name) for name in files],
            "bytes": size,
            "path": str(dest) if dest else None,
        },
        f"unpacked {len(files)} file(s) into {extract}{listed}",
    )


@app.command()
def challenge(
    job_id: str,
    reason: Annotated[str, typer.Option(help="What is wrong with the result.")],
    coordinator: CoordinatorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Dispute a committed result before its challenge window closes.

    On an on-chain market your wallet sends the challenge and its bond to the contract."""
    sdk = client(coordinator)
    wallet = _developer_wallet() if sdk.chain_info() is not None else None
    job = sdk.challenge(job_id, reason, wallet=wallet)
    emit(as_json, job, f"{job.id}: {job.state.value}; the operator will resolve it")
