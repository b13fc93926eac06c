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


def max_payment_micros(spec: JobSpec, premium_bps: int = 0) -> int:
    """The most a job can ever cost: the escrow locked when it is opened. A sampled job's
    escrow also holds its verification premium (``premium_bps`` of the most it can cost)."""
    price = to_micros(spec.max_price_per_hour)
    most = cost_micros(price, spec.resources.gpu_count, spec.max_duration_seconds)
    if spec.verification is VerificationMode.SAMPLED:
        return most + most * premium_bps // 10_000
    return most


def fee_micros(amount_micros: int, fee_bps: int) -> int:
    """The protocol fee: amount x bps / 10,000, rounded down (the dust stays with the provider)."""
    return amount_micros * fee_bps // 10_000
