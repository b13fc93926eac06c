"""``gpumarket provider ...``: run the provider daemon, show the inventory, benchmark."""

from __future__ import annotations

import json
import logging
import signal
from pathlib import Path
from typing import Annotated, Any

import typer

from gpumarket.cli.consoles import console
from gpumarket.cli.extras import require_extra
from gpumarket.cli.logsetup import (
    LogFormat,
    LogFormatOption,
    LogLevel,
    LogLevelOption,
    configure_logging,
)
from gpumarket.cli.output import JsonOption, emit, print_listing

app = typer.Typer(
    help="Offer this machine's GPUs (or CPU) on the marketplace.", no_args_is_help=True
)

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="TOML config (see docs/provider.md); flags override it."),
]


# the same flags as `provider run`, so a daemon started with them is staked and paid the same way
WalletOption = Annotated[
    Path | None,
    typer.Option("--wallet", help="The provider's keystore (default: the config's wallet)."),
]
CoordinatorUrlOption = Annotated[
    str | None, typer.Option("--coordinator", help="Coordinator URL (default: the config's).")
]


@app.command()
def inventory(
    as_json: JsonOption = False,
) -> None:
    """List this host's GPUs as NVML reports them (none without an NVIDIA driver)."""
    require_extra("provider", "the GPU inventory")
    from gpumarket.provider.gpu import NvmlInventory

    found = NvmlInventory().read()
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "gpus": [g.model_dump(mode="json") for g in found.gpus],
                    "reason_if_empty": found.reason_if_empty,
                },
                indent=2,
            )
        )
        return
    if not found.gpus:
        console.print(found.reason_if_empty or "no GPU found")
        return
    print_listing(
        (
            "#",
            "name",
            "UUID",
            "memory",
            "CC",
            "cores",
            "SM MHz",
            "TFLOPS FP32",
            "bandwidth GB/s",
            "power W",
        ),
        (
            (
                str(g.index),
                g.name,
                g.uuid,
                f"{g.memory_total_mb} MB",
                g.compute_capability or "?",
                _n(g.cuda_cores),
                _n(g.max_sm_clock_mhz),
                _n(g.tflops_fp32),
                _n(g.memory_bandwidth_gbps),
                _n(g.power_limit_w),
            )
            for g in found.gpus
        ),
        keys=("UUID",),
    )
    console.print(f"driver {found.driver_version}, CUDA {found.cuda_version}")


def _n(value: Any) -> str:
    return "unknown" if value is None else str(value)


@app.command()
def benchmark(
    image: Annotated[
        str,
        typer.Option(help="Image with python3 and NumPy (and PyTorch with CUDA to measure GPUs)."),
    ] = "gpumarket-test/python:1",
    as_json: JsonOption = False,
) -> None:
    """Measure matmul TFLOPS in a container and compare with the theoretical figure."""
    require_extra("provider", "the benchmark")
    from gpumarket.provider.benchmark import run_benchmark
    from gpumarket.provider.gpu import NvmlInventory

    gpus = NvmlInventory().read().gpus
    results = run_benchmark(image, gpus)
    if as_json:
        typer.echo(
            json.dumps(
                [
                    {**r.__dict__, "efficiency": r.efficiency, "far_below_spec": r.far_below_spec}
                    for r in results
                ],
                indent=2,
            )
        )
        return
    print_listing(
        ("device", "achieved TFLOPS", "theoretical TFLOPS", "efficiency", "verdict"),
        (
            (
                r.device,
                f"{r.achieved_tflops:.3f}",
                _n(r.theoretical_tflops),
                f"{r.efficiency:.0%}" if r.efficiency is not None else "-",
                "FAR BELOW SPEC" if r.far_below_spec else "ok",
            )
            for r in results
        ),
        keys=("device",),
    )


@app.command()
def run(
    config: ConfigOption = None,
    coordinator: Annotated[str | None, typer.Option(help="Coordinator URL.")] = None,
    wallet: Annotated[Path | None, typer.Option(help="Keystore (created if absent).")] = None,
    region: Annotated[str | None, typer.Option(help="Region to advertise.")] = None,
    work_dir: Annotated[Path | None, typer.Option(help="Jobs' work folders.")] = None,
    max_jobs: Annotated[int | None, typer.Option(help="Jobs at once.")] = None,
    cpu_price: Annotated[str | None, typer.Option(help="Price per hour of CPU jobs.")] = None,
    price: Annotated[
        list[str] | None,
        typer.Option(help="MODEL=PRICE per GPU-hour, repeatable (e.g. RTX4090=0.45)."),
    ] = None,
    allow_network: Annotated[
        bool | None,
        typer.Option("--allow-network/--no-network", help="Let jobs that ask have network access."),
    ] = None,
    benchmark_image: Annotated[
        str | None,
        typer.Option(help="Benchmark in this image at start and advertise the measured TFLOPS."),
    ] = None,
    log_level: LogLevelOption = LogLevel.INFO,
    log_format: LogFormatOption = LogFormat.TEXT,
) -> None:
    """Register with the coordinator and run the jobs it assigns until SIGTERM/Ctrl-C."""
    require_extra("provider", "the provider daemon")
    from gpumarket.errors import InvalidRequest
    from gpumarket.keystore import load_or_create_wallet
    from gpumarket.provider.config import load_config
    from gpumarket.provider.daemon import ProviderDaemon

    configure_logging(log_level, log_format)
    prices = None
    if price:
        prices = {}
        for item in price:
            model, sep, value = item.partition("=")
            if not sep:
                raise InvalidRequest(f"--price {item!r}: write MODEL=PRICE, e.g. RTX4090=0.45")
            prices[model] = value
    settings = load_config(
        config,
        coordinator_url=coordinator,
        wallet=wallet,
        region=region,
        work_dir=work_dir,
        max_concurrent_jobs=max_jobs,
        cpu_price_per_hour=cpu_price,
        prices=prices,
        allow_network=allow_network,
        benchmark_image=benchmark_image,
    )
    import os

    account, created = load_or_create_wallet(
        settings.wallet,
        os.environ.get(settings.wallet_password_env, ""),
        settings.wallet_password_env,
    )
    if created:
        logging.getLogger("gpumarket").info(
            "created payout wallet %s at %s", account.address, settings.wallet
        )
    daemon = ProviderDaemon(settings, account)
    signal.signal(signal.SIGTERM, lambda *_: daemon.stop())
    signal.signal(signal.SIGINT, lambda *_: daemon.stop())
    daemon.run()


@app.command()
def earnings(
    config: ConfigOption = None,
    work_dir: Annotated[Path | None, typer.Option(help="The daemon's work folder.")] = None,
    wallet: WalletOption = None,
    as_json: JsonOption = False,
) -> None:
    """What you have earned and your standing, as the coordinator records it (uses the key
    the daemon saved in its work folder); on an on-chain market also what the contract holds
    for you (withdraw it with `gpumarket provider withdraw`)."""
    from gpumarket.errors import AuthenticationFailed
    from gpumarket.provider.config import load_config
    from gpumarket.sdk import ProviderClient

    settings = load_config(config, work_dir=work_dir, wallet=wallet)
    path = settings.work_dir / "credential.json"
    if not path.exists():
        raise AuthenticationFailed(
            f"no saved provider key in {path}; run `gpumarket provider run` once to register"
        )
    saved = json.loads(path.read_text())
    client = ProviderClient(saved["coordinator"], saved["api_key"])
    me = client.me()
    chain = client.chain_info()
    in_market = None
    if chain is not None:
        from gpumarket.cli.chainops import open_wallet
        from gpumarket.settlement.wallet import MarketWallet

        account = open_wallet(settings.wallet, settings.wallet_password_env)
        in_market = MarketWallet(chain, account).balances().as_dict()
    if as_json:
        typer.echo(json.dumps({**me.model_dump(mode="json"), "on_chain": in_market}, indent=2))
        return
    console.print(f"provider {me.id} ({me.address})")
    console.print(
        f"earned {me.earned}; jobs completed {me.completed_jobs}, failed "
        f"{me.failed_jobs}, timed out {me.timed_out_jobs}, disputes lost "
        f"{me.disputes_lost}; score "
        + ("new (no score yet)" if me.score is None else f"{me.score:.3f}")
        + ("; BANNED: " + (me.ban_reason or "") if me.banned else "")
    )
    if in_market is not None:
        console.print(
            f"on-chain: {in_market['earnings']} to withdraw, stake {in_market['stake']} "
            f"({in_market['locked_stake']} locked by jobs in their window), "
            f"{in_market['unstaking']} unstaking"
        )


@app.command()
def show(
    provider_id: Annotated[str, typer.Argument(help="The provider's id (see `offers search`).")],
    coordinator: Annotated[
        str | None,
        typer.Option("--coordinator", envvar="GPUMARKET_COORDINATOR", help="Coordinator URL."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Any provider's public record: jobs completed, failed and timed out, re-runs passed and
    failed, disputes lost, slashes, uptime over 30 days, its score (docs/protocol.md has the
    formula; "new" until it has finished enough jobs) and how often its sampled jobs are
    re-run. No credential needed."""
    from gpumarket.cli.profile import load_profile
    from gpumarket.sdk import Client

    with Client(load_profile(coordinator).coordinator) as sdk:
        profile = sdk.provider_profile(provider_id)
    if as_json:
        typer.echo(profile.model_dump_json(indent=2))
        return
    gpus = ", ".join(f"{count}x {model}" for model, count in profile.gpu_models.items())
    score = "new (no score yet)" if profile.score is None else f"{profile.score:.3f}"
    lines = [
        f"provider {profile.id} ({profile.address}), region {profile.region or '-'}, "
        + ("online" if profile.online else "offline"),
        f"GPUs: {gpus or 'none (CPU only)'}; registered {profile.registered_at:%Y-%m-%d}",
        f"score {score}; uptime over 30 days {profile.uptime_30d:.1%}; sampled jobs re-run "
        f"with p = {profile.sampling_rate:.3f}",
        f"jobs: {profile.completed_jobs} completed, {profile.failed_jobs} failed, "
        f"{profile.timed_out_jobs} timed out",
        f"verification: {profile.reruns_passed} re-runs passed, {profile.reruns_failed} "
        f"failed, {profile.disputes_lost} disputes lost, {profile.slashes} slashes",
    ]
    for line in lines:
        console.print(line, highlight=False)


def _provider_market(config: Path | None, coordinator: str | None, wallet: Path | None) -> Any:
    from gpumarket.cli.chainops import market_wallet, open_wallet
    from gpumarket.provider.config import load_config

    settings = load_config(config, coordinator_url=coordinator, wallet=wallet)
    account = open_wallet(settings.wallet, settings.wallet_password_env)
    return market_wallet(settings.coordinator_url, account)


@app.command()
def stake(
    amount: Annotated[str, typer.Argument(help="Tokens to stake, e.g. 150.")],
    config: ConfigOption = None,
    coordinator: CoordinatorUrlOption = None,
    wallet: WalletOption = None,
    as_json: JsonOption = False,
) -> None:
    """Stake from the provider wallet: every committed result locks the larger of the
    market's minimum stake and a multiple of its amount until it settles, and a lost dispute
    slashes it; so one stake backs many small jobs or a few large ones."""
    from gpumarket.cli.chainops import parse_amount

    market = _provider_market(config, coordinator, wallet)
    tx = market.stake(parse_amount(amount))
    floor = market.chain.min_stake_micros / 1e6
    multiple = market.chain.stake_multiple
    rule = f"max({floor:g}, {multiple} x its amount)" if multiple else f"{floor:g}"
    emit(
        as_json,
        {
            "staked": amount,
            "tx_hash": tx,
            "locked_per_result": f"{floor:.6f}",
            "stake_multiple": multiple,
        },
        f"staked {amount} (tx {tx}); each committed result locks {rule}",
    )


@app.command()
def unstake(
    amount: Annotated[str, typer.Argument(help="Unlocked stake to take out.")],
    config: ConfigOption = None,
    coordinator: CoordinatorUrlOption = None,
    wallet: WalletOption = None,
    as_json: JsonOption = False,
) -> None:
    """Start taking unlocked stake out; `provider withdraw --stake` collects it after the delay."""
    from gpumarket.cli.chainops import parse_amount

    tx = _provider_market(config, coordinator, wallet).request_unstake(parse_amount(amount))
    emit(as_json, {"unstaking": amount, "tx_hash": tx}, f"unstake of {amount} requested (tx {tx})")


@app.command()
def withdraw(
    config: ConfigOption = None,
    coordinator: CoordinatorUrlOption = None,
    wallet: WalletOption = None,
    stake_too: Annotated[
        bool, typer.Option("--stake", help="Collect unstaked tokens whose delay has passed.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Send your on-chain earnings (and, with --stake, released stake) to the provider wallet."""
    market = _provider_market(config, coordinator, wallet)
    done: dict[str, str] = {}
    lines: list[str] = []
    if stake_too:
        done["stake_tx_hash"] = market.withdraw_stake()
        lines.append(f"stake withdrawn (tx {done['stake_tx_hash']})")
    earned = market.balances().earnings
    if earned > 0 or not stake_too:
        done["earnings"] = f"{earned / 1e6:.6f}"
        done["earnings_tx_hash"] = market.withdraw_earnings()
        lines.append(f"withdrew {done['earnings']} in earnings (tx {done['earnings_tx_hash']})")
    emit(as_json, done, "\n".join(lines))
