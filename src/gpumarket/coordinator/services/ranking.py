"""The key matching ranks offers by: price per benchmarked TFLOPS, adjusted by reputation.

Stored per offer (``OfferRow.rank_price``, indexed) so matching walks offers best first straight
off an index; recomputed when the offer changes (a heartbeat) or the provider's rank value
does (services/reputation.py).
"""

from __future__ import annotations

UNKNOWN_TFLOPS_RANK = 1.0
"""An offer whose GPUs have neither a benchmark nor a theoretical figure ranks as 1 TFLOPS."""


def rank_factor(value: float) -> float:
    """How much the rank value (a score in [0, 1]) discounts the price per TFLOPS: a perfect
    score ranks at its price, a score of 0 as if it asked twice as much."""
    return 0.5 + 0.5 * min(1.0, max(0.0, value))


def rank_price(price_micros: int, tflops: float | None, value: float = 1.0) -> float:
    """Price per TFLOPS over the rank factor: the primary ranking key (lower is better)."""
    per_tflops = price_micros / max(tflops or UNKNOWN_TFLOPS_RANK, 1e-3)
    return per_tflops / rank_factor(value)
