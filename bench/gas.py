"""Gas of every market function and of whole jobs, from real receipts on an anvil devnet.

Run: ``python bench/gas.py``. Prints the gas of each step of one job (transaction gas: the
21,000 base and calldata included), the total per job, and the amortized cost per job when 50
jobs are finalized with one ``finalizeMany``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from web3 import Web3

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gpumarket.settlement.contracts import Market, token_contract  # noqa: E402
from gpumarket.settlement.deploy import send_signed  # noqa: E402
from gpumarket.settlement.devnet import Devnet  # noqa: E402
from gpumarket.settlement.signing import Order, job_id_bytes, sign_order, sign_result  # noqa: E402

USD = 10**6


def main() -> None:
    with Devnet.start() as net:
        w3 = net.w3
        market = Market(w3, net.deployment.market)
        token = token_contract(w3, net.deployment.token)
        coordinator, dev, prov = net.accounts[0], net.accounts[1], net.accounts[2]

        def tx(who, data):  # type: ignore[no-untyped-def]
            receipt = send_signed(w3, who, {"to": market.address, "data": data, "gas": 5_000_000})
            return int(receipt["gasUsed"])

        for who in (dev, prov):
            send_signed(
                w3,
                who,
                dict(
                    token.functions.approve(market.address, 2**256 - 1).build_transaction(
                        {"from": who.address}
                    )
                ),
            )
        gas: dict[str, int] = {}
        gas["deposit (first)"] = tx(dev, market.calldata("deposit", 5_000 * USD))
        gas["deposit (again)"] = tx(dev, market.calldata("deposit", 1 * USD))
        gas["stake (first)"] = tx(prov, market.calldata("stake", 5_000 * USD))

        def open_commit(name: str, amount: int) -> tuple[int, int]:
            order = Order(job_id_bytes(name), b"\x01" * 32, 10 * USD, int(time.time()) + 86400, 1)
            sig = sign_order(dev, order, net.deployment.chain_id, market.address)
            opened = tx(coordinator, market.calldata("openJob", order.as_tuple(), sig))
            result = Web3.keccak(text=name)
            psig = sign_result(
                prov, job_id_bytes(name), result, amount, net.deployment.chain_id, market.address
            )
            committed = tx(
                coordinator,
                market.calldata("commitResult", job_id_bytes(name), result, amount, psig),
            )
            return opened, committed

        # warm-up job so the treasury and burn slots are not zero (steady state)
        open_commit("warmup", 5 * USD)
        net.time_travel(3600)
        tx(coordinator, market.calldata("finalize", job_id_bytes("warmup")))

        opened, committed = open_commit("job", 6 * USD)
        net.time_travel(3600)
        finalized = tx(prov, market.calldata("finalize", job_id_bytes("job")))
        gas["openJob"], gas["commitResult"], gas["finalize"] = opened, committed, finalized
        gas["withdrawEarnings"] = tx(prov, market.calldata("withdrawEarnings"))

        opens = commits = 0
        ids = []
        for i in range(50):
            o, c = open_commit(f"batch-{i}", 5 * USD)
            opens += o
            commits += c
            ids.append(job_id_bytes(f"batch-{i}"))
        net.time_travel(3600)
        batch = tx(coordinator, market.calldata("finalizeMany", ids))

        orders, sigs, results, amounts, psigs, ids2 = [], [], [], [], [], []
        for i in range(50):
            name = f"many-{i}"
            order = Order(job_id_bytes(name), b"\x01" * 32, 10 * USD, int(time.time()) + 86400, 1)
            orders.append(order.as_tuple())
            sigs.append(sign_order(dev, order, net.deployment.chain_id, market.address))
            result = Web3.keccak(text=name)
            results.append(result)
            amounts.append(5 * USD)
            psigs.append(
                sign_result(
                    prov,
                    job_id_bytes(name),
                    result,
                    5 * USD,
                    net.deployment.chain_id,
                    market.address,
                )
            )
            ids2.append(job_id_bytes(name))
        open_many = tx(coordinator, market.calldata("openMany", orders, sigs))
        commit_many = tx(coordinator, market.calldata("commitMany", ids2, results, amounts, psigs))
        net.time_travel(3600)
        finalize_many = tx(coordinator, market.calldata("finalizeMany", ids2))

        print(f"{'step':<22} {'gas':>9}")
        for step, used in gas.items():
            print(f"{step:<22} {used:>9,}")
        whole = opened + committed + finalized
        print(f"\none job, open + commit + finalize: {whole:,} gas (target <= 150,000)")
        per_job = (opens + commits + batch) / 50
        print(
            f"50 jobs, opened and committed one by one, finalized with one finalizeMany "
            f"({batch:,} gas): {per_job:,.0f} gas per job (target <= 60,000); "
            f"finalizeMany alone {batch / 50:,.0f} per job"
        )
        batched = (open_many + commit_many + finalize_many) / 50
        print(
            f"50 jobs with openMany ({open_many:,}), commitMany ({commit_many:,}) and "
            f"finalizeMany ({finalize_many:,}): {batched:,.0f} gas per job (target <= 60,000)"
        )


if __name__ == "__main__":
    main()
