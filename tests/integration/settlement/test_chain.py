"""The settlement client against a real anvil chain over JSON-RPC: signatures the contract
accepts, a whole job's money flow with exact balances, disputes both ways (a scaled stake
slashed), cancel, named revert errors, a verifier's window extension, the outbox surviving a
crash and an RPC outage, and the event reader."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount
from web3 import Web3

from gpumarket.errors import ContractReverted, Unreachable
from gpumarket.protocol import stake_to_lock
from gpumarket.settlement.contracts import Market, token_contract
from gpumarket.settlement.deploy import DEFAULT_TERMS, send_signed
from gpumarket.settlement.devnet import Devnet
from gpumarket.settlement.events import EventReader
from gpumarket.settlement.outbox import SqliteOutboxStore, TransactionSender
from gpumarket.settlement.signing import Order, compact, job_id_bytes, sign_order, sign_result

pytestmark = pytest.mark.integration
USD = 10**6
BOND = 10 * USD


def locked_by(amount: int) -> int:
    """What a result of ``amount`` locks on the default terms (and a lost challenge slashes)."""
    return stake_to_lock(amount, DEFAULT_TERMS["min_stake"], DEFAULT_TERMS["stake_multiple"])


@pytest.fixture
def net() -> Iterator[Devnet]:
    with Devnet.start() as devnet:
        yield devnet


class World:
    """The devnet's actors: coordinator (outbox), developer, provider, treasury."""

    def __init__(self, net: Devnet, outbox: Path) -> None:
        self.net = net
        self.w3 = net.w3
        self.market = Market(net.w3, net.deployment.market)
        self.token = token_contract(net.w3, net.deployment.token)
        self.coordinator = net.accounts[0]
        self.dev = net.accounts[1]
        self.prov = net.accounts[2]
        self.treasury = net.accounts[5]
        self.sender = TransactionSender(
            net.w3, self.coordinator, SqliteOutboxStore(outbox), self.market.errors
        )

    def call(self, who: LocalAccount, function: str, *args: object) -> None:
        send_signed(
            self.w3,
            who,
            {
                "to": self.market.address,
                "gas": 300_000,
                "data": self.market.calldata(function, *args),
            },
        )

    def approve_and(self, who: LocalAccount, function: str, amount: int) -> None:
        send_signed(
            self.w3,
            who,
            dict(
                self.token.functions.approve(self.market.address, 2**256 - 1).build_transaction(
                    {"from": who.address}
                )
            ),
        )
        self.call(who, function, amount)

    def balance(self, who: LocalAccount) -> tuple[int, int, int, int]:
        account = self.market.view("accountId", who.address)
        return tuple(self.market.view("balances", account))  # type: ignore[return-value]

    def open(self, job: str, max_payment: int) -> str:
        order = Order(job_id_bytes(job), b"\x11" * 32, max_payment, int(time.time()) + 86400, 1)
        signature = sign_order(self.dev, order, self.net.deployment.chain_id, self.market.address)
        data = self.market.calldata("openJob", order.as_tuple(), compact(signature))
        return self.sender.submit(f"open:{job}", self.market.address, data).hash

    def commit(self, job: str, amount: int) -> str:
        result = Web3.keccak(text=f"outputs of {job}")
        signature = sign_result(
            self.prov,
            job_id_bytes(job),
            result,
            amount,
            self.net.deployment.chain_id,
            self.market.address,
        )
        data = self.market.calldata(
            "commitResult", job_id_bytes(job), result, amount, compact(signature)
        )
        return self.sender.submit(f"commit:{job}", self.market.address, data).hash


@pytest.fixture
def world(net: Devnet, tmp_path: Path) -> World:
    w = World(net, tmp_path / "outbox.db")
    w.approve_and(w.dev, "deposit", 1_000 * USD)
    w.approve_and(w.prov, "stake", 300 * USD)
    return w


def test_signatures_match_the_contracts_digests(world: World) -> None:
    order = Order(job_id_bytes("job_x"), b"\x22" * 32, 5 * USD, 2_000_000_000, 7)
    digest = world.market.view("orderDigest", order.as_tuple())
    signature = sign_order(world.dev, order, world.net.deployment.chain_id, world.market.address)
    from eth_account import Account

    assert Account._recover_hash(digest, signature=signature) == world.dev.address


def test_a_whole_job_pays_exactly(world: World, net: Devnet) -> None:
    deposit_before = world.balance(world.dev)[0]
    world.open("job_1", 10 * USD)
    assert world.balance(world.dev)[0] == deposit_before - 10 * USD
    world.commit("job_1", 6 * USD)
    with pytest.raises(ContractReverted) as early:
        world.sender.submit(
            "finalize:job_1:early",
            world.market.address,
            world.market.calldata("finalize", job_id_bytes("job_1")),
        )
    assert early.value.error == "WindowOpen"
    net.time_travel(3600)
    world.sender.submit(
        "finalize:job_1",
        world.market.address,
        world.market.calldata("finalize", job_id_bytes("job_1")),
    )
    fee = 6 * USD * 250 // 10_000
    burned = fee * 2000 // 10_000
    assert world.balance(world.prov)[1] == 6 * USD - fee
    assert world.market.view("treasuryBalance") == fee - burned
    assert world.market.view("burnBalance") == burned
    assert world.balance(world.dev)[0] == deposit_before - 6 * USD
    wallet = world.token.functions.balanceOf(world.prov.address).call()
    world.call(world.prov, "withdrawEarnings")
    assert world.token.functions.balanceOf(world.prov.address).call() == wallet + 6 * USD - fee


@pytest.mark.parametrize("provider_at_fault", [True, False])
def test_disputes_both_ways(world: World, provider_at_fault: bool) -> None:
    deposit_before = world.balance(world.dev)[0]
    world.open("job_2", 10 * USD)
    world.commit("job_2", 10 * USD)
    send_signed(
        world.w3,
        world.dev,
        {
            "to": world.market.address,
            "gas": 300_000,
            "data": world.market.calldata("challenge", job_id_bytes("job_2")),
        },
    )
    world.sender.submit(
        "resolve:job_2",
        world.market.address,
        world.market.calldata("resolve", job_id_bytes("job_2"), provider_at_fault),
    )
    slashed = locked_by(10 * USD)
    assert slashed == 200 * USD  # 20 x the amount, over the 1-token floor
    if provider_at_fault:
        assert world.balance(world.dev)[0] == deposit_before
        assert world.balance(world.dev)[1] == slashed // 2 + BOND
        assert world.balance(world.prov)[2] == 300 * USD - slashed
        assert world.balance(world.prov)[3] == 0  # nothing locked any more
    else:
        assert world.balance(world.prov)[1] == 10 * USD - 10 * USD * 250 // 10_000 + BOND


def test_cancel_refunds_and_reverts_are_named(world: World) -> None:
    deposit_before = world.balance(world.dev)[0]
    world.open("job_3", 10 * USD)
    world.sender.submit(
        "cancel:job_3", world.market.address, world.market.calldata("cancel", job_id_bytes("job_3"))
    )
    assert world.balance(world.dev)[0] == deposit_before
    repeat = world.open("job_3", 10 * USD)  # a retried request: the outbox answers it
    assert world.sender.get("open:job_3").hash == repeat  # type: ignore[union-attr]
    order = Order(job_id_bytes("job_3"), b"\x11" * 32, 10 * USD, int(time.time()) + 86400, 2)
    signature = sign_order(world.dev, order, world.net.deployment.chain_id, world.market.address)
    with pytest.raises(ContractReverted) as again:  # a new order for the same job id
        world.sender.submit(
            "open:job_3:second",
            world.market.address,
            world.market.calldata("openJob", order.as_tuple(), compact(signature)),
        )
    assert again.value.error == "WrongState"
    with pytest.raises(ContractReverted) as poor:
        world.open("job_4", 10_000 * USD)
    assert poor.value.error == "InsufficientBalance"


def test_outbox_resends_after_a_crash_without_paying_twice(world: World, tmp_path: Path) -> None:
    world.open("job_5", 10 * USD)
    world.commit("job_5", 4 * USD)
    world.net.time_travel(3600)
    data = world.market.calldata("finalize", job_id_bytes("job_5"))
    # the coordinator dies after recording the transaction but before sending it
    world.sender._confirm = lambda key: None  # type: ignore[method-assign]
    world.sender.submit("finalize:job_5", world.market.address, data)
    assert world.sender.pending() == 1
    restarted = TransactionSender(
        world.w3, world.coordinator, SqliteOutboxStore(tmp_path / "outbox.db"), world.market.errors
    )
    (done,) = restarted.resume()
    assert done.status == "done"
    again = restarted.submit("finalize:job_5", world.market.address, data)  # a retried request
    assert again.hash == done.hash
    paid = world.balance(world.prov)[1]
    assert paid == 4 * USD - 4 * USD * 250 // 10_000  # once, not twice


def test_rpc_outage_keeps_the_transaction_for_later(world: World, tmp_path: Path) -> None:
    world.open("job_6", 10 * USD)
    broken = TransactionSender(
        world.w3, world.coordinator, SqliteOutboxStore(tmp_path / "outbox.db"), world.market.errors
    )
    data = world.market.calldata("cancel", job_id_bytes("job_6"))
    gas = 100_000
    real = world.w3.provider
    world.w3.provider = Web3.HTTPProvider("http://127.0.0.1:9")  # type: ignore[assignment]
    with pytest.raises(Unreachable):
        broken.submit("cancel:job_6", world.market.address, data, gas=gas)
    world.w3.provider = real
    if broken.get("cancel:job_6") is None:  # the outage hit before the record: submit again
        broken.submit("cancel:job_6", world.market.address, data, gas=gas)
    else:
        broken.resume()
    assert broken.get("cancel:job_6").status == "done"  # type: ignore[union-attr]


def test_a_verifier_extends_a_window_once_and_the_reader_decodes_it(world: World) -> None:
    """The deployer holds the verifier role: it extends a committed job's window once, the
    finalize waits for the new end, and the event reader decodes ``WindowExtended``."""
    reader = EventReader(world.market, from_block=world.w3.eth.block_number + 1)
    world.open("job_ext", 10 * USD)
    world.commit("job_ext", 5 * USD)
    assert world.balance(world.prov)[3] == locked_by(5 * USD) == 100 * USD
    job_id = job_id_bytes("job_ext")
    end = world.market.job(job_id).deadline
    extend = world.market.calldata("extendWindow", job_id, 7200)
    world.sender.submit("extend:job_ext", world.market.address, extend)
    assert world.market.job(job_id).deadline == end + 7200
    with pytest.raises(ContractReverted) as twice:
        world.sender.submit("extend:job_ext:again", world.market.address, extend)
    assert twice.value.error == "AlreadyExtended"
    with pytest.raises(ContractReverted) as long:
        world.sender.submit(
            "extend:job_ext:long",
            world.market.address,
            world.market.calldata("extendWindow", job_id, DEFAULT_TERMS["verify_window"] + 1),
        )
    assert long.value.error == "AlreadyExtended"  # checked before the length
    world.net.time_travel(3600)
    finalize = world.market.calldata("finalize", job_id)
    with pytest.raises(ContractReverted) as early:
        world.sender.submit("finalize:job_ext:early", world.market.address, finalize)
    assert early.value.error == "WindowOpen"
    assert early.value.args_[0] == end + 7200
    extended = [e for e in reader.poll() if e.name == "WindowExtended"]
    assert [(bytes(e.args["jobId"]), e.args["windowEnd"]) for e in extended] == [
        (job_id, end + 7200)
    ]
    world.net.time_travel(7200)
    world.sender.submit("finalize:job_ext", world.market.address, finalize)
    assert world.balance(world.prov)[3] == 0  # exactly its 100 unlocked


def test_event_reader_follows_in_order(world: World) -> None:
    reader = EventReader(world.market, from_block=world.net.deployment.block)
    world.open("job_7", 2 * USD)
    world.commit("job_7", 1 * USD)
    names = [e.name for e in reader.poll()]
    assert names[-2:] == ["JobOpened", "ResultCommitted"]
    assert "Deposited" in names and "Staked" in names
    assert list(reader.poll()) == []  # nothing new
    world.net.time_travel(3600)
    world.sender.submit(
        "finalize:job_7",
        world.market.address,
        world.market.calldata("finalize", job_id_bytes("job_7")),
    )
    (settled,) = list(reader.poll())
    assert settled.name == "Settled" and settled.args["providerPaid"] == USD - 25_000
    assert settled.tx_hash.startswith("0x") and settled.block > 0


def test_cli_deploys_to_any_rpc_endpoint(net: Devnet, tmp_path: Path) -> None:
    import json
    import os
    import subprocess
    import sys

    from gpumarket.settlement.devnet import DEV_KEYS

    out = tmp_path / "deployment.json"
    env = {**os.environ, "GPUMARKET_DEPLOYER_KEY": DEV_KEYS[3]}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "gpumarket.cli",
            "chain",
            "deploy",
            "--rpc-url",
            net.rpc_url,
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    deployment = json.loads(out.read_text())
    assert deployment["chain_id"] == 31337
    market = Market(net.w3, deployment["market"])
    assert market.view("currentTerms")[0] == 250  # fee bps
    assert deployment["market"] != net.deployment.market


def test_cli_devnet_with_a_short_window_and_time_travel(tmp_path: Path) -> None:
    """`chain devnet --window` deploys with that challenge window; `chain travel` moves the
    dev chain's clock past it, and the clock moves by itself while the chain is idle (a block a
    second); SIGTERM stops the devnet and its anvil."""
    import json
    import signal
    import subprocess
    import sys

    from web3 import Web3

    from gpumarket.settlement.devnet import free_port

    port = free_port()
    out = tmp_path / "devnet.json"
    cli = [sys.executable, "-m", "gpumarket.cli", "chain"]
    devnet = subprocess.Popen(
        [*cli, "devnet", "--port", str(port), "--window", "60", "--out", str(out)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert devnet.stdout is not None
        printed = ""
        while not printed.endswith("}\n"):  # the JSON it prints once deployed
            line = devnet.stdout.readline()
            assert line, "chain devnet exited before printing its deployment"
            printed += line
        shown = json.loads(printed)
        assert shown["challenge_window_seconds"] == 60
        w3 = Web3(Web3.HTTPProvider(shown["rpc_url"]))
        assert Market(w3, shown["market"]).view("currentTerms")[3] == 60  # window
        before = int(w3.eth.get_block("latest")["timestamp"])
        moved = subprocess.run(
            [*cli, "travel", "61", "--rpc-url", shown["rpc_url"], "--json"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        assert json.loads(moved.stdout)["chain_time"] >= before + 61
        assert int(w3.eth.get_block("latest")["timestamp"]) >= before + 61
        # idle, the chain still mines a block a second: its clock moves, windows end
        idle_from = w3.eth.get_block("latest")
        time.sleep(2.5)
        idle_to = w3.eth.get_block("latest")
        assert idle_to["number"] >= idle_from["number"] + 2
        assert idle_to["timestamp"] >= idle_from["timestamp"] + 2
    finally:
        devnet.send_signal(signal.SIGTERM)
        assert devnet.wait(30) == 0


def test_outbox_crash_between_send_and_receipt(world: World, tmp_path: Path) -> None:
    world.open("job_8", 10 * USD)
    data = world.market.calldata("cancel", job_id_bytes("job_8"))

    def crash(tx_hash: str) -> None:
        raise SystemExit("killed after sending, before the receipt")

    world.sender._wait = crash  # type: ignore[method-assign, assignment]
    with pytest.raises(SystemExit):
        world.sender.submit("cancel:job_8", world.market.address, data)
    assert world.sender.pending() == 1
    restarted = TransactionSender(
        world.w3, world.coordinator, SqliteOutboxStore(tmp_path / "outbox.db"), world.market.errors
    )
    (done,) = restarted.resume()  # re-sends the same signed bytes: the node already has them
    assert done.status == "done"
    (job_state,) = [world.market.job(job_id_bytes("job_8")).state]
    assert job_state == 6  # Cancelled, once
    nonce_after = world.w3.eth.get_transaction_count(world.coordinator.address)
    restarted.resume()
    assert world.w3.eth.get_transaction_count(world.coordinator.address) == nonce_after
