"""Per-second billing and the protocol fee, in integer micro-units of the payment token."""

from __future__ import annotations

from gpumarket.protocol.base import to_micros
from gpumarket.protocol.jobs import JobSpec, VerificationMode


def billable_units(gpu_count: int) -> int:
    """GPU jobs pay per GPU; a CPU-only job pays its price once."""
    return max(gpu_count, 1)


def cost_micros(price_micros_per_hour: int, gpu_count: int, seconds: float) -> int:
    """Pay-as-bid, per second: ask x GPUs x seconds / 3600, rounded down to a micro-unit."""
    if seconds <= 0:
        return 0
    return int(price_micros_per_hour * billable_units(gpu_count) * seconds // 3600)


def replica_count(spec: JobSpec) -> int:
    """The runs a job pays beyond its own: a redundant job's ``redundancy - 1`` replicas (the
    contract keeps them as the job's *copies*), none otherwise."""
    if spec.verification is VerificationMode.REDUNDANT:
        return (spec.redundancy or 1) - 1
    return 0


def verification_premium_micros(spec: JobSpec, amount_micros: int, premium_bps: int) -> int:
    """What a verified job's developer pays into the verification pool for ``amount_micros``
    of work, as the contract computes it: ``premium_bps`` of the amount for a sampled job, and
    the whole amount once more per replica for a redundant one (the pool pays the replicas)."""
    if spec.verification is VerificationMode.OPTIMISTIC:
        return 0
    return amount_micros * (premium_bps + replica_count(spec) * 10_000) // 10_000


def run_cost_micros(spec: JobSpec) -> int:
    """The most one run of a job can claim: its price cap for its whole time limit."""
    price = to_micros(spec.max_price_per_hour)
    return cost_micros(price, spec.resources.gpu_count, spec.max_duration_seconds)


def max_payment_micros(spec: JobSpec, premium_bps: int = 0) -> int:
    """The most a job can ever cost: the escrow locked when it is opened. A verified job's
    escrow also holds its premium on the most a run can claim (see
    :func:`verification_premium_micros`), so the contract can always take it."""
    most = run_cost_micros(spec)
    return most + verification_premium_micros(spec, most, premium_bps)


def fee_micros(amount_micros: int, fee_bps: int) -> int:
    """The protocol fee: amount x bps / 10,000, rounded down (the dust stays with the provider)."""
    return amount_micros * fee_bps // 10_000
