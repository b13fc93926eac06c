"""``gpumarket admin ...``: the operator's commands (they need the admin token)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer

from gpumarket.cli.consoles import console
from gpumarket.cli.output import JsonOption, emit, or_dash, print_listing
from gpumarket.cli.profile import load_profile
from gpumarket.errors import AuthenticationFailed
from gpumarket.protocol import JobEvent, JobState

if TYPE_CHECKING:
    from gpumarket.sdk import AdminClient

app = typer.Typer(help="Operate the marketplace (admin token).", no_args_is_help=True)

TokenOption = Annotated[
    str | None,
    typer.Option("--admin-token", envvar="GPUMARKET_ADMIN_TOKEN", help="The operator credential."),
]
CoordinatorOption = Annotated[
    str | None,
    typer.Option("--coordinator", envvar="GPUMARKET_COORDINATOR", help="Coordinator URL."),
]


def admin(coordinator: str | None, token: str | None) -> AdminClient:
    """An AdminClient, or a one-line hint when no token is given."""
    from gpumarket.sdk import AdminClient

    if not token:
        raise AuthenticationFailed("give the admin token: --admin-token or GPUMARKET_ADMIN_TOKEN")
    return AdminClient(load_profile(coordinator).coordinator, token)


@app.command()
def providers(
    coordinator: CoordinatorOption = None,
    admin_token: TokenOption = None,
    online: Annotated[bool | None, typer.Option(help="Only online ones.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Providers with their GPUs, capacity and reputation."""
    rows = admin(coordinator, admin_token).providers(online=online)
    if as_json:
        typer.echo(json.dumps([p.model_dump(mode="json") for p in rows], indent=2))
        return
    print_listing(
        ("id", "region", "online", "banned", "GPUs", "active", "done", "reputation", "earned"),
        (
            (
                p.id,
                p.region or "-",
                str(p.online),
                str(p.banned),
                f"{len(p.gpus)}x " + (", ".join(sorted({g["name"] for g in p.gpus})) or "CPU"),
                str(p.active_jobs),
                str(p.completed_jobs),
                f"{p.reputation:.2f}",
                str(p.earned),
            )
            for p in rows
        ),
    )


@app.command()
def ban(
    provider_id: str,
    reason: Annotated[str, typer.Option(help="Why (kept on record).")],
    coordinator: CoordinatorOption = None,
    admin_token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Stop matching jobs to a provider."""
    admin(coordinator, admin_token).ban(provider_id, reason)
    emit(
        as_json,
        {"provider_id": provider_id, "banned": True, "reason": reason},
        f"banned {provider_id}: {reason}",
    )


@app.command()
def unban(
    provider_id: str,
    coordinator: CoordinatorOption = None,
    admin_token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Let a banned provider take jobs again."""
    admin(coordinator, admin_token).unban(provider_id)
    emit(as_json, {"provider_id": provider_id, "banned": False}, f"unbanned {provider_id}")


@app.command()
def jobs(
    coordinator: CoordinatorOption = None,
    admin_token: TokenOption = None,
    state: Annotated[list[JobState] | None, typer.Option(help="Filter.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Every job, newest first."""
    page = admin(coordinator, admin_token).jobs(state or [])
    if as_json:
        typer.echo(page.model_dump_json(indent=2))
        return
    print_listing(
        ("id", "state", "owner", "provider", "cost"),
        ((j.id, j.state.value, j.owner, j.provider_id or "-", or_dash(j.cost)) for j in page.items),
        keys=("id", "owner", "provider"),
    )


@app.command()
def disputes(
    coordinator: CoordinatorOption = None,
    admin_token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Jobs waiting for a ruling (DISPUTED, or a cancelled run whose claim was challenged)."""
    operator = admin(coordinator, admin_token)
    waiting = operator.disputes()
    if as_json:
        items = [j.model_dump(mode="json") for j in waiting]
        typer.echo(json.dumps({"items": items}, indent=2))  # the shape of every listing
        return
    print_listing(
        ("id", "state", "owner", "provider", "claimed", "challenged", "reason"),
        (
            (
                j.id,
                j.state.value,
                j.owner,
                j.provider_id or "-",
                or_dash(j.cost),
                next((s.at for s in j.chain if s.step == "challenge"), j.updated_at).strftime(
                    "%Y-%m-%d %H:%M:%S"
                ),
                _challenge_reason(operator.events(j.id)),
            )
            for j in waiting
        ),
        keys=("id", "owner", "provider"),
    )


def _challenge_reason(events: list[JobEvent]) -> str:
    """What the challenger said, from the job's move to DISPUTED (a cancelled run's claim
    challenged on-chain has no such move: the job stays CANCELLED)."""
    for event in reversed(events):
        if event.kind == "job" and event.to_state == JobState.DISPUTED:
            return event.reason.removeprefix("challenged: ")
    return "the claim of a cancelled run, challenged on-chain"


@app.command()
def cancel(
    job_id: str,
    coordinator: CoordinatorOption = None,
    admin_token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Cancel any unfinished job."""
    job = admin(coordinator, admin_token).cancel(job_id)
    emit(as_json, job, f"{job.id}: {job.state.value}")


@app.command()
def resolve(
    job_id: str,
    provider_at_fault: Annotated[
        bool, typer.Option("--provider-at-fault/--provider-right", help="The ruling.")
    ],
    note: Annotated[str, typer.Option(help="Kept on record.")] = "",
    coordinator: CoordinatorOption = None,
    admin_token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Decide a disputed job: at fault -> REFUNDED, right -> SETTLED."""
    job = admin(coordinator, admin_token).resolve(job_id, provider_at_fault, note)
    emit(as_json, job, f"{job.id}: {job.state.value}")


@app.command()
def stats(
    coordinator: CoordinatorOption = None,
    admin_token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Jobs by state, providers, GPUs and CPUs online and busy, utilization, revenue (every
    payment, a cancelled run's seconds included) and fees."""
    data = admin(coordinator, admin_token).stats()
    if as_json:
        typer.echo(data.model_dump_json(indent=2))
        return
    jobs_line = ", ".join(f"{k} {v}" for k, v in data.jobs_by_state.items() if v)
    console.print(f"jobs: {jobs_line or 'none'}")
    console.print(
        f"providers: {data.providers_online} online of {data.providers_total} "
        f"({data.providers_banned} banned); GPUs: {data.gpus_busy} busy of "
        f"{data.gpus_online} online; CPUs for CPU jobs: {data.cpus_busy:g} busy of "
        f"{data.cpus_online:g} online"
    )
    console.print(
        f"utilization over {data.window_seconds // 60} min: GPUs "
        f"{data.utilization:.1%} ({data.gpu_hours_used:.2f} of "
        f"{data.gpu_hours_available:.2f} GPU-hours), CPUs "
        f"{data.cpu_utilization:.1%} ({data.cpu_hours_used:.2f} of "
        f"{data.cpu_hours_available:.2f} CPU-hours)"
    )
    console.print(
        f"revenue {data.revenue_micros / 1e6:.6f}, fees "
        f"{data.fees_micros / 1e6:.6f}, pending {data.pending_micros / 1e6:.6f}"
    )


@app.command()
def fee(
    fee_bps: Annotated[int, typer.Argument(help="Basis points of each payment (at most 1000).")],
    burn_bps: Annotated[
        int | None, typer.Option(help="Share of the fee burned, in basis points.")
    ] = None,
    coordinator: CoordinatorOption = None,
    admin_token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Set the protocol fee for jobs opened from now on (running jobs keep their terms)."""
    change = admin(coordinator, admin_token).set_fee(fee_bps, burn_bps)
    emit(
        as_json,
        change,
        f"fee {change.chain.fee_bps} bps, burn {change.chain.burn_bps} bps of it "
        f"(tx {change.tx_hash})",
    )


@app.command()
def pause(
    resume: Annotated[bool, typer.Option("--resume", help="Resume instead.")] = False,
    coordinator: CoordinatorOption = None,
    admin_token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Pause the market (no new jobs are opened; withdrawals keep working), or --resume it."""
    change = admin(coordinator, admin_token).set_paused(not resume)
    state = "paused" if change.paused else "running"
    emit(as_json, change, f"market {state} (tx {change.tx_hash})")
