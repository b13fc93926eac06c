"""The provider's signed claim for a finished job, when the market settles on-chain.

The amount is the agreed ask x GPUs x seconds used, capped by the developer's escrow: the same
figure the coordinator checks and the contract pays. The signature binds it to the result
(exit code and the outputs' canonical digest), the job, the contract and the chain.
"""

from __future__ import annotations

from eth_account.signers.local import LocalAccount

from gpumarket.protocol import Assignment, ChainInfo, ResultClaim, to_micros
from gpumarket.protocol.pricing import cost_micros
from gpumarket.settlement.signing import result_hash, sign_result


class ClaimSigner:
    """Signs result claims with the provider's wallet for one market."""

    def __init__(self, account: LocalAccount, chain: ChainInfo) -> None:
        self.account = account
        self.chain = chain

    def claim(
        self,
        assignment: Assignment,
        exit_code: int,
        output_hash: str | None,
        usage: float,
        cap_micros: int | None = None,
        output_digest: str | None = None,
    ) -> ResultClaim:
        """The claim for a run that used ``usage`` seconds (never above ``cap_micros``: what
        the coordinator billed a run it cancelled, up to the moment of the cancel). A run
        stopped at its time limit ran a little past it (the stop and its grace): the
        developer's ``max_duration_seconds`` means "stop it and charge me up to here", so the
        seconds billed stop there, as the coordinator bills them; a claim above that would be
        refused."""
        if assignment.chain_job_id is None:
            raise ValueError(f"job {assignment.job_id} has no on-chain id to claim against")
        price = to_micros(assignment.price_per_hour)
        billed = min(usage, float(assignment.spec.max_duration_seconds))
        amount = min(
            cost_micros(price, assignment.spec.resources.gpu_count, billed),
            assignment.max_payment_micros,
            assignment.max_payment_micros if cap_micros is None else cap_micros,
        )
        digest = result_hash(exit_code, output_hash, output_digest)
        signature = sign_result(
            self.account,
            bytes.fromhex(assignment.chain_job_id[2:]),
            digest,
            amount,
            self.chain.chain_id,
            self.chain.market,
        )
        return ResultClaim(
            amount_micros=amount,
            result_hash="0x" + digest.hex(),
            signature="0x" + signature.hex(),
        )
