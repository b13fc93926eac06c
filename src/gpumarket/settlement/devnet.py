"""A local anvil chain for the demo and the tests: started, deployed, funded, time-travelled."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3

from gpumarket.errors import SettlementError
from gpumarket.settlement.contracts import Deployment, token_contract
from gpumarket.settlement.deploy import deploy, send_signed

# anvil's well-known development mnemonic ("test test ... junk"): public, for dev chains only
DEV_KEYS = [
    "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
    "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
    "0x47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a",
    "0x8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba",
]


def find_anvil() -> str:
    """anvil from $GPUMARKET_ANVIL, the repository's contracts/node_modules, or PATH."""
    candidates = [os.environ.get("GPUMARKET_ANVIL", "")]
    here = Path(__file__).resolve()
    for parent in here.parents:
        candidates.append(str(parent / "contracts" / "node_modules" / ".bin" / "anvil"))
    candidates.append(shutil.which("anvil") or "")
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return candidate
    raise SettlementError(
        "anvil not found: run `make contracts` (npm's @foundry-rs/anvil) or set GPUMARKET_ANVIL"
    )


def free_port() -> int:
    """An unused loopback port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Devnet:
    """A running anvil with the contracts deployed and dev accounts funded."""

    process: subprocess.Popen[bytes]
    rpc_url: str
    w3: Web3
    deployment: Deployment
    accounts: list[LocalAccount]

    @classmethod
    def start(
        cls,
        port: int | None = None,
        fund_micros: int = 10_000 * 10**6,
        terms: dict[str, int] | None = None,
        block_time: int | None = None,
        steps_tracing: bool = False,
        mine_transactions_at_once: bool = False,
    ) -> Devnet:
        """Start anvil, deploy (account 0 is admin, coordinator and arbiter; account 5 the
        treasury), and mint test dollars to accounts 1-4. ``block_time``: mine a block every
        that many seconds, as a real chain does (a transaction waits for the next block),
        instead of one per transaction; with ``mine_transactions_at_once`` as well, both: the
        chain's clock moves while nothing happens (without blocks, a challenge window never
        ends on an idle devnet: the clock is the latest block's timestamp) and a transaction is
        mined at once, which suits a devnet used by hand.
        ``steps_tracing``: anvil keeps every instruction, so ``debug_traceTransaction`` answers
        with its struct logs (where a transaction's gas goes: ``bench/gas.py``)."""
        port = port or free_port()
        mining = ["--block-time", str(block_time)] if block_time else []
        if block_time and mine_transactions_at_once:
            mining.append("--mixed-mining")
        tracing = ["--steps-tracing"] if steps_tracing else []
        process = subprocess.Popen(  # noqa: S603 - our own binary, fixed arguments
            [find_anvil(), "--port", str(port), "--silent", "--accounts", "10", *mining, *tracing],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        rpc_url = f"http://127.0.0.1:{port}"
        w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": 10}))
        for _ in range(100):
            if process.poll() is not None:
                raise SettlementError("anvil exited at start")
            try:
                w3.eth.chain_id  # noqa: B018 - a liveness probe
                break
            except Exception:
                time.sleep(0.1)
        accounts: list[LocalAccount] = [Account.from_key(k) for k in DEV_KEYS]
        deployment = deploy(w3, accounts[0], treasury=accounts[5].address, terms=terms)
        token = token_contract(w3, deployment.token)
        for account in accounts[1:5]:
            send_signed(
                w3,
                accounts[0],
                dict(
                    token.functions.mint(account.address, fund_micros).build_transaction(
                        {"from": accounts[0].address}
                    )
                ),
            )
        return cls(process, rpc_url, w3, deployment, accounts)

    def fund(self, address: str, micros: int) -> None:
        """Give ``address`` gas money and test dollars."""
        fund_wallet(self.w3, self.deployment.token, address, micros, DEV_KEYS[0])

    def time_travel(self, seconds: int) -> None:
        """Move the chain's clock forward and mine a block (to pass a challenge window)."""
        time_travel(self.w3, seconds)

    def stop(self) -> None:
        """Stop anvil."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def fund_wallet(w3: Web3, token: str, address: str, micros: int, minter_key: str) -> None:
    """Dev chains only: set ``address``'s ETH balance to 10 (anvil's ``anvil_setBalance``) and
    mint it ``micros`` of the test stablecoin."""
    w3.provider.make_request("anvil_setBalance", [address, hex(10 * 10**18)])  # type: ignore[arg-type]
    minter: LocalAccount = Account.from_key(minter_key)
    contract = token_contract(w3, token)
    send_signed(
        w3,
        minter,
        dict(contract.functions.mint(address, micros).build_transaction({"from": minter.address})),
    )


def time_travel(w3: Web3, seconds: int) -> int:
    """Dev chains only: move the chain's clock ``seconds`` forward and mine a block, so a
    challenge window or an order's deadline passes now; returns the new block's timestamp. A
    chain without the dev methods (``evm_increaseTime``) is refused, not silently left as is."""
    for method, params in (("evm_increaseTime", [seconds]), ("evm_mine", [])):
        answer = w3.provider.make_request(method, params)  # type: ignore[arg-type]
        if "error" in answer:
            raise SettlementError(
                f"{method} refused ({answer['error'].get('message', answer['error'])}): "
                "time travel works only on dev chains such as `gpumarket chain devnet`"
            )
    return int(w3.eth.get_block("latest")["timestamp"])
