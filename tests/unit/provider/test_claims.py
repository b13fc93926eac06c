"""A provider's claim: ask x GPUs x seconds, capped by the escrow, signed over the result."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from eth_account import Account

from gpumarket.protocol import Assignment, ChainInfo, JobSpec
from gpumarket.provider.claims import ClaimSigner
from gpumarket.settlement.signing import job_id_bytes, result_hash, result_signer

CHAIN = ChainInfo(
    chain_id=31337,
    rpc_url="http://127.0.0.1:8545",
    market="0x" + "22" * 20,
    token="0x" + "33" * 20,
    fee_bps=250,
    burn_bps=2000,
    window_seconds=3600,
    min_stake_micros=100_000_000,
    challenge_bond_micros=10_000_000,
)


def assignment(gpus: int, escrow: int) -> Assignment:
    resources = {"gpu": f"RTX4090:{gpus}"} if gpus else {}
    return Assignment(
        job_id="job_1",
        spec=JobSpec.model_validate(
            {"image": "busybox:1", "max_price_per_hour": "2", "resources": resources}
        ),
        gpu_uuids=[],
        price_per_hour=Decimal("1.8"),
        attempt=1,
        lease_expires_at=datetime.now(UTC),
        chain_job_id="0x" + job_id_bytes("job_1").hex(),
        max_payment_micros=escrow,
    )


def test_the_claim_is_ask_times_gpus_times_seconds_and_signed() -> None:
    wallet = Account.create()
    claim = ClaimSigner(wallet, CHAIN).claim(assignment(2, 10**9), 0, "sha256:" + "a" * 64, 100)
    assert claim.amount_micros == 1_800_000 * 2 * 100 // 3600  # 100,000
    digest = result_hash(0, "sha256:" + "a" * 64)
    assert claim.result_hash == "0x" + digest.hex()
    signer = result_signer(
        bytes.fromhex(claim.signature[2:]),
        job_id_bytes("job_1"),
        digest,
        claim.amount_micros,
        CHAIN.chain_id,
        CHAIN.market,
    )
    assert signer == wallet.address


def test_the_claim_never_exceeds_the_escrow_and_binds_the_exit_code() -> None:
    signer = ClaimSigner(Account.create(), CHAIN)
    capped = signer.claim(assignment(0, 5_000), 1, None, 3600)
    assert capped.amount_micros == 5_000
    assert capped.result_hash != signer.claim(assignment(0, 5_000), 0, None, 3600).result_hash


def test_a_run_stopped_at_its_limit_claims_what_the_coordinator_bills() -> None:
    from datetime import timedelta

    from gpumarket.coordinator.db.models import Job
    from gpumarket.coordinator.services.lifecycle import billable_micros

    base = assignment(1, 10**9)
    limited = base.model_copy(
        update={"spec": base.spec.model_copy(update={"max_duration_seconds": 15})}
    )
    claim = ClaimSigner(Account.create(), CHAIN).claim(limited, 143, None, 15.504)
    assert claim.amount_micros == 1_800_000 * 15 // 3600  # the limit's 15 s, not 15.504 s
    now = datetime.now(UTC)
    job = Job(
        spec=limited.spec.model_dump(mode="json"),
        price_micros=1_800_000,
        gpu_count=1,
        escrow_micros=10**9,
        assigned_at=now - timedelta(seconds=20),
    )
    assert claim.amount_micros == billable_micros(job, 15.504, now)  # not over: accepted
