"""Gas of every market function and of whole jobs, from real receipts on an anvil devnet.

Run: ``python bench/gas.py``. Prints the gas of each step of one job (transaction gas: the
21,000 base and calldata included) on the default terms (a result locks max(1 token, 20 x its
amount): the job's 6-token claim locks 120, over the floor), a commit whose stake is the floor,
a verifier's ``extendWindow``, a sampled job's steps (``openVerified`` with no copies, the
finalize that pays its premium into the verification pool, the verifier's bond-free
``challenge`` and the ruling that pays the slash share to the pool, ``payRerun`` of a
re-runner's signed claim, and ``fundPool``), a redundant job's of three runs (``openVerified``
with 2 copies, ``payRerun`` of both replicas, the finalize whose premium adds the amount per
copy), the total per job, and the amortized cost per job of 50
jobs: opened and committed one by one and finalized with one ``finalizeMany``; with
``openMany``, ``commitMany`` and ``finalizeMany`` for one developer and one provider (the
batch keeps a recurring account's balances in memory); and the same batches when every job
switches to another of 10 developers and 5 providers (the cache never hits).

It then shows where the single job's gas goes, step by step, from anvil's instruction traces:
the 21,000 transaction base, calldata, storage reads and writes, signature recovery, events,
hashing and the other instructions (the figures behind docs/protocol.md's analysis of the
150,000 target).
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gpumarket.protocol import stake_to_lock  # noqa: E402
from gpumarket.settlement.contracts import Market, token_contract  # noqa: E402
from gpumarket.settlement.deploy import send_signed  # noqa: E402
from gpumarket.settlement.devnet import Devnet  # noqa: E402
from gpumarket.settlement.signing import (  # noqa: E402
    Order,
    compact,
    job_id_bytes,
    sign_order,
    sign_result,
)

USD = 10**6
BATCH = 50
TX_BASE = 21_000
# what each instruction is counted as; everything else is "other instructions"
CATEGORIES = {
    "SLOAD": "storage reads",
    "SSTORE": "storage writes",
    "STATICCALL": "signature recovery",  # the only static call: the ecrecover precompile
    "KECCAK256": "hashing",
}
COLUMNS = (
    "transaction base",
    "calldata",
    "storage reads",
    "storage writes",
    "signature recovery",
    "events",
    "hashing",
    "other instructions",
)


def calldata_gas(data: bytes) -> int:
    """What the calldata costs (EIP-2028: 16 a non-zero byte, 4 a zero byte)."""
    return sum(16 if byte else 4 for byte in data)


def gas_breakdown(w3: Web3, tx_hash: bytes) -> Counter[str]:
    """One transaction's gas by what it paid for, from anvil's struct logs (anvil started with
    steps tracing). An instruction's cost is the gas it takes before the next top-level one,
    so a call's cost includes what the callee spent."""
    trace = w3.provider.make_request(  # type: ignore[arg-type]
        "debug_traceTransaction",
        ["0x" + bytes(tx_hash).hex(), {"disableStack": True, "disableStorage": True}],
    )
    steps = [step for step in trace["result"]["structLogs"] if step["depth"] == 1]
    if not steps:
        raise SystemExit("anvil returned no instruction trace (is it started with steps tracing?)")
    spent: Counter[str] = Counter()
    for step, following in zip(steps, [*steps[1:], None], strict=True):
        cost = step["gas"] - following["gas"] if following else step["gasCost"]
        op = step["op"]
        category = "events" if op.startswith("LOG") else CATEGORIES.get(op, "other instructions")
        spent[category] += cost
    data = bytes(w3.eth.get_transaction(tx_hash)["input"])
    spent["transaction base"] = TX_BASE
    spent["calldata"] = calldata_gas(data)
    receipt_gas = int(w3.eth.get_transaction_receipt(tx_hash)["gasUsed"])
    if sum(spent.values()) != receipt_gas:
        raise SystemExit(f"breakdown {sum(spent.values()):,} != receipt's {receipt_gas:,} gas")
    return spent


def print_breakdown(steps: dict[str, Counter[str]]) -> None:
    """A table: a row per kind of cost, a column per step and the job's total."""
    names = list(steps)
    print(f"\nwhere one job's gas goes (anvil instruction traces)\n{'':<20}", end="")
    print("".join(f"{name:>14}" for name in [*names, "job"]))
    for column in COLUMNS:
        row = [steps[name][column] for name in names]
        print(f"{column:<20}" + "".join(f"{v:>14,}" for v in [*row, sum(row)]))
    totals = [sum(steps[name].values()) for name in names]
    print(f"{'total':<20}" + "".join(f"{v:>14,}" for v in [*totals, sum(totals)]))


def main() -> None:
    with Devnet.start(steps_tracing=True) as net:
        w3 = net.w3
        market = Market(w3, net.deployment.market)
        token = token_contract(w3, net.deployment.token)
        chain_id = net.deployment.chain_id
        coordinator, dev, prov = net.accounts[0], net.accounts[1], net.accounts[2]

        traced: dict[str, bytes] = {}

        def tx(who: LocalAccount, data: str, trace_as: str | None = None) -> int:
            receipt = send_signed(w3, who, {"to": market.address, "data": data, "gas": 15_000_000})
            if trace_as:
                traced[trace_as] = bytes(receipt["transactionHash"])
            return int(receipt["gasUsed"])

        def approve(who: LocalAccount) -> None:
            call = token.functions.approve(market.address, 2**256 - 1)
            send_signed(w3, who, dict(call.build_transaction({"from": who.address})))

        def signed_job(
            name: str,
            developer: LocalAccount,
            provider: LocalAccount,
            amount: int,
            max_payment: int = 10 * USD,
        ) -> dict[str, Any]:
            deadline = int(time.time()) + 86400
            order = Order(job_id_bytes(name), b"\x01" * 32, max_payment, deadline, 1)
            result = Web3.keccak(text=name)
            return {
                "order": order.as_tuple(),
                "sig": compact(sign_order(developer, order, chain_id, market.address)),
                "id": job_id_bytes(name),
                "result": result,
                "amount": amount,
                "psig": compact(
                    sign_result(
                        provider, job_id_bytes(name), result, amount, chain_id, market.address
                    )
                ),
            }

        def open_commit(
            name: str,
            amount: int,
            trace: bool = False,
            opener: str = "openJob",
            copies: int = 0,
            max_payment: int = 10 * USD,
        ) -> tuple[int, int]:
            """Open (``openJob``, or ``openVerified`` with ``copies``: a word appended after
            its arguments, as MarketClient.open_verified sends it) and commit one job."""
            job = signed_job(name, dev, prov, amount, max_payment)
            data = market.calldata(opener, job["order"], job["sig"])
            if copies:
                data += copies.to_bytes(32, "big").hex()
            opened = tx(coordinator, data, "openJob" if trace else None)
            committed = tx(
                coordinator,
                market.calldata("commitResult", job["id"], job["result"], amount, job["psig"]),
                "commitResult" if trace else None,
            )
            return opened, committed

        def batched(jobs: list[dict[str, Any]]) -> tuple[int, int, int]:
            opened = tx(
                coordinator,
                market.calldata("openMany", [j["order"] for j in jobs], [j["sig"] for j in jobs]),
            )
            committed = tx(
                coordinator,
                market.calldata(
                    "commitMany",
                    [j["id"] for j in jobs],
                    [j["result"] for j in jobs],
                    [j["amount"] for j in jobs],
                    [j["psig"] for j in jobs],
                ),
            )
            net.time_travel(3600)
            finalized = tx(coordinator, market.calldata("finalizeMany", [j["id"] for j in jobs]))
            return opened, committed, finalized

        for who in (dev, prov):
            approve(who)
        gas: dict[str, int] = {}
        gas["deposit (first)"] = tx(dev, market.calldata("deposit", 5_000 * USD))
        gas["deposit (again)"] = tx(dev, market.calldata("deposit", 1 * USD))
        # up to 51 results of 5 tokens lock 20 x their amount at once; the provider keeps some
        # tokens in its wallet (emptying it would make the stake's transfer refund gas and the
        # first earnings withdrawal pay to create the balance again)
        gas["stake (first)"] = tx(prov, market.calldata("stake", 9_000 * USD))
        terms = market.terms()

        # the first job on this deployment: no warm-up, the protocol's fee word already exists
        opened, committed = open_commit("job", 6 * USD, trace=True)
        net.time_travel(3600)
        finalized = tx(prov, market.calldata("finalize", job_id_bytes("job")), "finalize")
        gas["openJob"], gas["commitResult"], gas["finalize"] = opened, committed, finalized
        scaled = stake_to_lock(6 * USD, terms.min_stake, terms.stake_multiple)
        # a claim small enough that its stake is the floor: the same code path, for comparison
        small = terms.min_stake // max(terms.stake_multiple, 1) // 2
        _, gas["commitResult (floor stake)"] = open_commit("floor", small)
        floor = stake_to_lock(small, terms.min_stake, terms.stake_multiple)
        gas["extendWindow"] = tx(
            coordinator, market.calldata("extendWindow", job_id_bytes("floor"), 3600)
        )
        gas["withdrawEarnings"] = tx(prov, market.calldata("withdrawEarnings"))
        gas["withdrawTreasury"] = tx(coordinator, market.calldata("withdrawTreasury"))
        gas["burn"] = tx(coordinator, market.calldata("burn"))
        open_commit("after-payouts", 6 * USD)
        net.time_travel(3600)
        gas["finalize (fees paid out)"] = tx(
            prov, market.calldata("finalize", job_id_bytes("after-payouts"))
        )

        # a sampled job: opened verified, re-run by another provider whose claim the verifier
        # (the coordinator's account) pays from the pool, finalized with its premium
        pool_before = market.verification_pool()
        gas["openVerified"], gas["commitResult (verified job)"] = open_commit(
            "verified", 6 * USD, opener="openVerified"
        )
        runner = net.accounts[3]
        approve(runner)
        tx(runner, market.calldata("stake", 100 * USD))  # a provider of the market
        rerun = Web3.keccak(text="verified")
        rerun_sig = compact(
            sign_result(runner, job_id_bytes("verified"), rerun, 6 * USD, chain_id, market.address)
        )
        gas["payRerun"] = tx(
            coordinator,
            market.calldata("payRerun", job_id_bytes("verified"), rerun, 6 * USD, rerun_sig),
        )
        net.time_travel(3600)
        gas["finalize (verified: premium)"] = tx(
            prov, market.calldata("finalize", job_id_bytes("verified"))
        )
        premium = min(6 * USD * terms.premium_bps // 10_000, 4 * USD)
        # a redundant job of three runs: opened verified with 2 copies (its replicas), the
        # escrow holding what protocol.pricing.max_payment_micros asks of a 10-token cap (the
        # cap once per run, and the premium on it); both replicas' claims paid from the pool;
        # finalized with the premium: the amount once per copy plus premiumBps of it
        copies = 2
        escrow = 10 * USD * (1 + copies) + 10 * USD * terms.premium_bps // 10_000
        gas["openVerified (2 copies)"], gas["commitResult (redundant job)"] = open_commit(
            "redundant", 6 * USD, opener="openVerified", copies=copies, max_payment=escrow
        )
        second = net.accounts[4]
        approve(second)
        tx(second, market.calldata("stake", 100 * USD))
        replica_result = Web3.keccak(text="redundant")
        for number, replica in enumerate((runner, second), start=1):
            replica_sig = compact(
                sign_result(
                    replica,
                    job_id_bytes("redundant"),
                    replica_result,
                    6 * USD,
                    chain_id,
                    market.address,
                )
            )
            gas[f"payRerun (replica {number} of {copies})"] = tx(
                coordinator,
                market.calldata(
                    "payRerun", job_id_bytes("redundant"), replica_result, 6 * USD, replica_sig
                ),
            )
        net.time_travel(3600)
        gas["finalize (redundant: premium)"] = tx(
            prov, market.calldata("finalize", job_id_bytes("redundant"))
        )
        redundant_premium = min(
            6 * USD * (terms.premium_bps + copies * 10_000) // 10_000, escrow - 6 * USD
        )
        # caught: the verifier challenges without a bond; the ruling pays the pool the share
        open_commit("caught", 6 * USD, opener="openVerified")
        gas["challenge (verifier, no bond)"] = tx(
            coordinator, market.calldata("challenge", job_id_bytes("caught"))
        )
        gas["resolve (at fault, verifier)"] = tx(
            coordinator, market.calldata("resolve", job_id_bytes("caught"), True)
        )
        share = scaled * terms.slash_share_bps // 10_000
        mint = token.functions.mint(coordinator.address, 100 * USD)
        send_signed(w3, coordinator, dict(mint.build_transaction({"from": coordinator.address})))
        approve(coordinator)
        gas["fundPool"] = tx(coordinator, market.calldata("fundPool", 100 * USD))
        pool_after = market.verification_pool()
        rerun_spend = 6 * USD + copies * 6 * USD  # the sampled job's re-run, the replicas
        intake = premium + redundant_premium + share + 100 * USD
        if pool_after != pool_before - rerun_spend + intake:
            raise SystemExit(f"the pool holds {pool_after:,}, not what the steps put in it")

        opens = commits = 0
        ids = []
        for i in range(BATCH):
            o, c = open_commit(f"batch-{i}", 5 * USD)
            opens += o
            commits += c
            ids.append(job_id_bytes(f"batch-{i}"))
        net.time_travel(3600)
        one_by_one_finalize = tx(coordinator, market.calldata("finalizeMany", ids))

        same = batched([signed_job(f"many-{i}", dev, prov, 5 * USD) for i in range(BATCH)])

        developers: list[LocalAccount] = [Account.create() for _ in range(10)]
        providers: list[LocalAccount] = [Account.create() for _ in range(5)]
        for who in developers + providers:
            net.fund(who.address, 1_000 * USD)
            approve(who)
        for who in developers:
            tx(who, market.calldata("deposit", 500 * USD))
        for who in providers:
            tx(who, market.calldata("stake", 1_000 * USD))  # 10 jobs x 20 x 5 tokens each
        mixed = batched(
            [
                signed_job(f"mixed-{i}", developers[i % 10], providers[i % 5], 5 * USD)
                for i in range(BATCH)
            ]
        )

        print(f"{'step':<32} {'gas':>9}")
        for step, used in gas.items():
            print(f"{step:<32} {used:>9,}")
        whole = opened + committed + finalized
        print(
            f"\ncommitResult locks {scaled / USD:,.2f} tokens (max({terms.min_stake / USD:g}, "
            f"{terms.stake_multiple} x 6)); the floor-stake commit {floor / USD:,.2f} "
            f"(a {small / USD:g}-token claim); extendWindow adds 3,600 s to its window"
        )
        print(
            f"a sampled job's premium: {terms.premium_bps / 100:g}% of 6 = {premium / USD:g} "
            f"to the pool; a verifier's won challenge: {share / USD:g} of the {scaled / USD:g} "
            f"slashed to the pool; the pool: {pool_before / USD:,.2f} seeded, "
            f"{pool_after / USD:,.2f} after a 6-token re-run, the premium, the share, a "
            "100-token fundPool and the redundant job's"
        )
        print(
            f"a redundant job's premium ({copies} copies): 6 x ({copies} + "
            f"{terms.premium_bps / 100:g}%) = {redundant_premium / USD:g} to the pool, which "
            f"paid its {copies} replicas 6 each; its escrow {escrow / USD:g} "
            f"(10 x {1 + copies} + {terms.premium_bps / 100:g}% of 10)"
        )
        print(f"one job, open + commit + finalize: {whole:,} gas (target <= 150,000)")
        verified = gas["openVerified"] + gas["commitResult (verified job)"]
        verified += gas["finalize (verified: premium)"]
        print(f"one sampled job, openVerified + commit + finalize: {verified:,} gas")
        redundant = gas["openVerified (2 copies)"] + gas["commitResult (redundant job)"]
        redundant += gas["finalize (redundant: premium)"]
        paid = sum(gas[f"payRerun (replica {n} of {copies})"] for n in range(1, copies + 1))
        print(
            f"one redundant job ({copies} copies), openVerified + commit + finalize: "
            f"{redundant:,} gas; with its replicas' payRerun: {redundant + paid:,}"
        )
        per_job = (opens + commits + one_by_one_finalize) / BATCH
        print(
            f"{BATCH} jobs, opened and committed one by one, finalized with one finalizeMany "
            f"({one_by_one_finalize:,} gas): {per_job:,.0f} gas per job; finalizeMany alone "
            f"{one_by_one_finalize / BATCH:,.0f} per job"
        )
        for label, (o, c, f) in (
            ("one developer, one provider", same),
            ("10 developers, 5 providers, interleaved", mixed),
        ):
            print(
                f"{BATCH} jobs batched, {label}: openMany {o / BATCH:,.0f} + commitMany "
                f"{c / BATCH:,.0f} + finalizeMany {f / BATCH:,.0f} = {(o + c + f) / BATCH:,.0f} "
                "gas per job (target <= 60,000)"
            )
        print_breakdown({step: gas_breakdown(w3, tx_hash) for step, tx_hash in traced.items()})
        if whole >= 150_000:
            raise SystemExit(f"a plain job costs {whole:,} gas: over the 150,000 target")


if __name__ == "__main__":
    main()
