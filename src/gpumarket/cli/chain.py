"""``gpumarket chain ...``: a local dev chain, and deploying the contracts anywhere."""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path
from typing import Annotated, Any

import typer

from gpumarket.cli.output import JsonOption, emit

AlwaysJson = Annotated[
    bool, typer.Option("--json", help="Accepted for scripts; the output is JSON either way.")
]

app = typer.Typer(
    help="Run a local dev chain or deploy the escrow contracts.", no_args_is_help=True
)


DEVNET_FILE = Path(".gpumarket/devnet.json")
DEFAULT_RPC_URL = "http://127.0.0.1:8545"
RpcUrlOption = Annotated[
    str | None,
    typer.Option(
        help=f"The dev chain's RPC URL [default: the deployment file's, else {DEFAULT_RPC_URL}]."
    ),
]
DeploymentOption = Annotated[
    Path, typer.Option("--deployment", help="Deployment file of the dev chain.")
]


def _rpc_url(given: str | None, deployment_file: Path) -> str:
    """The chain to talk to: the flag, else the RPC URL the deployment file records (``chain
    devnet`` and ``chain deploy`` write it), else anvil's default port."""
    if given:
        return given
    try:
        saved = json.loads(deployment_file.read_text())
    except (OSError, ValueError):
        return DEFAULT_RPC_URL
    url = saved.get("rpc_url") if isinstance(saved, dict) else None
    return str(url) if url else DEFAULT_RPC_URL


@app.command()
def devnet(
    port: Annotated[int, typer.Option(help="JSON-RPC port.")] = 8545,
    out: Annotated[
        Path, typer.Option(help="Where to write the deployment file (with the RPC URL).")
    ] = DEVNET_FILE,
    window: Annotated[
        int,
        typer.Option(
            min=1,
            help="The market's challenge window in seconds (a result is paid this long after "
            "its commit; `gpumarket chain travel` skips ahead).",
        ),
    ] = 3600,
    block_time: Annotated[
        int,
        typer.Option(
            min=0,
            help="Also mine a block every this many seconds, so the chain's clock (which ends "
            "challenge windows) moves while nothing happens, as on a real chain; 0: blocks only "
            "for transactions.",
        ),
    ] = 1,
    as_json: AlwaysJson = True,
) -> None:
    """Start anvil, deploy the test stablecoin and the market, fund dev accounts 1-4 with
    10,000 test dollars each, print everything, and run until Ctrl-C."""
    from gpumarket.settlement.deploy import write_deployment
    from gpumarket.settlement.devnet import Devnet

    net = Devnet.start(
        port=port,
        terms={"window": window},
        block_time=block_time or None,
        mine_transactions_at_once=True,
    )
    write_deployment(net.deployment, out, net.rpc_url)
    typer.echo(
        json.dumps(
            {
                "rpc_url": net.rpc_url,
                **net.deployment.as_dict(),
                "deployment_file": str(out),
                "coordinator (account 0)": net.accounts[0].address,
                "treasury (account 5)": net.accounts[5].address,
                "challenge_window_seconds": window,
                "funded dev accounts": [a.address for a in net.accounts[1:5]],
            },
            indent=2,
        )
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(0.5):
            if net.process.poll() is not None:
                raise typer.Exit(1)
    except KeyboardInterrupt:
        pass
    finally:
        net.stop()


@app.command()
def deploy(
    rpc_url: Annotated[str, typer.Option(help="Any EVM JSON-RPC endpoint.")],
    key: Annotated[
        str,
        typer.Option(
            envvar="GPUMARKET_DEPLOYER_KEY", help="Deployer private key (prefer the env variable)."
        ),
    ],
    token: Annotated[
        str | None,
        typer.Option(help="Payment token (ERC-20); omitted: deploy the test stablecoin."),
    ] = None,
    treasury: Annotated[str | None, typer.Option(help="Fee treasury (default: deployer).")] = None,
    out: Annotated[Path, typer.Option(help="Deployment file.")] = Path("deployment.json"),
    as_json: AlwaysJson = True,
) -> None:
    """Deploy the market (and a test token unless --token), grant the deployer the
    coordinator, arbiter, pauser and verifier roles, and write the deployment file."""
    from eth_account import Account

    from gpumarket.errors import InvalidRequest
    from gpumarket.settlement.deploy import deploy as deploy_contracts
    from gpumarket.settlement.deploy import write_deployment

    try:
        account = Account.from_key(key)
    except (ValueError, TypeError) as exc:
        raise InvalidRequest("--key is not a private key (0x + 64 hex digits)") from exc
    w3 = _connect(rpc_url)
    deployment = deploy_contracts(w3, account, token=token, treasury=treasury)
    write_deployment(deployment, out, rpc_url)
    typer.echo(json.dumps(deployment.as_dict(), indent=2))


@app.command()
def fund(
    address: Annotated[str, typer.Argument(help="Wallet address to fund.")],
    rpc_url: RpcUrlOption = None,
    deployment_file: DeploymentOption = DEVNET_FILE,
    amount: Annotated[int, typer.Option(help="Test dollars to mint.")] = 1000,
    as_json: JsonOption = False,
) -> None:
    """Dev chains only (anvil): give a wallet 10 ETH for gas and mint it test dollars, so a
    fresh `gpumarket wallet new` can deposit or stake."""
    from web3 import Web3

    from gpumarket.errors import InvalidRequest
    from gpumarket.settlement.devnet import DEV_KEYS, fund_wallet

    if not Web3.is_address(address):
        raise InvalidRequest(f"{address!r} is not an address (0x + 40 hex digits)")
    if not deployment_file.exists():
        raise InvalidRequest(
            f"no deployment file at {deployment_file}; run `gpumarket chain devnet`"
        )
    saved = json.loads(deployment_file.read_text())
    w3 = _connect(_rpc_url(rpc_url, deployment_file))
    token = saved["token"]
    fund_wallet(w3, token, Web3.to_checksum_address(address), amount * 10**6, DEV_KEYS[0])
    emit(
        as_json,
        {"address": address, "eth": 10, "test_dollars": amount},
        f"funded {address} with 10 ETH and {amount} test dollars",
    )


@app.command()
def travel(
    seconds: Annotated[int, typer.Argument(min=1, help="How far to move the clock.")],
    rpc_url: RpcUrlOption = None,
    deployment_file: DeploymentOption = DEVNET_FILE,
    as_json: JsonOption = False,
) -> None:
    """Dev chains only (anvil): move the chain's clock forward and mine a block, so challenge
    windows and order deadlines pass now; the coordinator then finalizes or expires as it
    would after the real wait."""
    from datetime import UTC, datetime

    from gpumarket.settlement.devnet import time_travel

    now = time_travel(_connect(_rpc_url(rpc_url, deployment_file)), seconds)
    shown = datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    emit(
        as_json,
        {"advanced_seconds": seconds, "chain_time": now},
        f"moved the chain {seconds} s ahead: chain time is now {shown}",
    )


def _connect(rpc_url: str) -> Any:
    """A web3 client of the chain at ``rpc_url``, or a one-line error when nothing answers."""
    from web3 import Web3

    from gpumarket.errors import Unreachable

    w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": 30}))
    if not w3.is_connected():
        raise Unreachable(f"cannot reach the chain at {rpc_url}")
    return w3
