"""The open reputation: counters anyone can read, the score computed from them, the sampling
rate it sets, and the value matching ranks a provider by.

Everything here is a pure function of a provider's public counters and the coordinator's
settings, so ``GET /v1/providers/{id}``, matching and ``bench/economics.py`` agree, and anyone
can recompute a score. docs/protocol.md ("Reputation") states the formula.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from gpumarket.coordinator.db.models import OfferRow, Provider
from gpumarket.coordinator.services.ranking import rank_price
from gpumarket.coordinator.settings import CoordinatorSettings

NEWCOMER_JOBS = 5
"""Finished jobs before a provider gets a public score; until then it is a newcomer, explored
on purpose (``explore_share``) and sampled more often (``sampling_rate_new``)."""
NEWCOMER_RANK = 0.5
"""The score a clean newcomer is ranked by in matching until it has its own (scaled down by
the faults it already has)."""
UPTIME_DAYS = 30
"""The uptime a score counts: the last 30 days (or since registration, if later)."""
UPTIME_MIN_SPAN = timedelta(hours=1)
"""A provider registered less than this ago has uptime 1: too short a span to judge."""

DISPUTE_WEIGHT = 3
"""A lost dispute weighs as three failed jobs."""
RERUN_FAIL_WEIGHT = 10
"""A failed re-run (a wrong result caught) weighs as ten failed jobs."""
SLASH_FACTOR = 0.5
"""Each slash halves the score."""


def finished_jobs(provider: Provider) -> int:
    """Jobs that ended on the provider with a verdict: the evidence a score rests on."""
    return provider.completed_jobs + provider.failed_jobs + provider.timed_out_jobs


def is_newcomer(provider: Provider) -> bool:
    """Too little history for a score: explored on purpose and sampled more."""
    return finished_jobs(provider) < NEWCOMER_JOBS


def uptime_fraction(provider: Provider, now: datetime) -> float:
    """Seconds online over the last 30 days (since registration, if later), in [0, 1]."""
    since = max(now - timedelta(days=UPTIME_DAYS), provider.registered_at)
    if now - since < UPTIME_MIN_SPAN:
        return 1.0
    span = (now - since).total_seconds()
    first_day = since.date().isoformat()
    online = sum(
        seconds for day, seconds in (provider.uptime_days or {}).items() if day >= first_day
    )
    return max(0.0, min(1.0, online / span))


def score(
    completed: int,
    failed: int,
    timed_out: int,
    disputes_lost: int,
    reruns_passed: int,
    reruns_failed: int,
    slashes: int,
    uptime: float,
) -> float:
    """The score in [0, 1]: a Laplace-smoothed share of good outcomes (completed jobs and
    passed re-runs against failures, time-outs, lost disputes x3 and failed re-runs x10),
    times (0.5 + 0.5 x uptime), halved for every slash."""
    good, bad = _outcomes(completed, failed, timed_out, disputes_lost, reruns_passed, reruns_failed)
    success = (good + 1) / (good + bad + 2)
    return success * (0.5 + 0.5 * uptime) * SLASH_FACTOR**slashes


def _outcomes(
    completed: int,
    failed: int,
    timed_out: int,
    disputes_lost: int,
    reruns_passed: int,
    reruns_failed: int,
) -> tuple[int, int]:
    """Good and bad outcomes, each fault by its weight."""
    good = completed + reruns_passed
    bad = failed + timed_out + DISPUTE_WEIGHT * disputes_lost + RERUN_FAIL_WEIGHT * reruns_failed
    return good, bad


def provider_score(provider: Provider, now: datetime) -> float | None:
    """The provider's public score, or None while it is a newcomer."""
    if is_newcomer(provider):
        return None
    return score(
        provider.completed_jobs,
        provider.failed_jobs,
        provider.timed_out_jobs,
        provider.disputes_lost,
        provider.reruns_passed,
        provider.reruns_failed,
        provider.slashes,
        uptime_fraction(provider, now),
    )


def is_suspect(reruns_passed: int, reruns_failed: int, settings: CoordinatorSettings) -> bool:
    """A failed re-run not yet outweighed by enough passed ones."""
    return reruns_failed * settings.suspect_clear_passes > reruns_passed


def sampling_rate(
    provider_score: float | None,
    reruns_passed: int,
    reruns_failed: int,
    settings: CoordinatorSettings,
) -> float:
    """p, the probability that a sampled job of this provider is re-run elsewhere: the
    newcomer rate without a score, falling quadratically to the floor as the score nears 1,
    and the suspect rate after a failed re-run."""
    if provider_score is None:
        rate = settings.sampling_rate_new
    else:
        span = settings.sampling_rate_new - settings.sampling_rate_min
        rate = settings.sampling_rate_min + span * (1.0 - provider_score) ** 2
    if is_suspect(reruns_passed, reruns_failed, settings):
        rate = max(rate, settings.sampling_rate_suspect)
    return rate


def rank_value(provider: Provider) -> float:
    """What matching ranks a provider by: its score, or, for a newcomer, the newcomer value
    scaled by the share of its few jobs that went well (a newcomer that failed its first jobs
    ranks below a clean one)."""
    if provider.score is not None:
        return provider.score
    good, bad = _outcomes(
        provider.completed_jobs,
        provider.failed_jobs,
        provider.timed_out_jobs,
        provider.disputes_lost,
        provider.reruns_passed,
        provider.reruns_failed,
    )
    return NEWCOMER_RANK * (good + 1) / (good + bad + 1) * SLASH_FACTOR**provider.slashes


def refresh(session: Session, provider: Provider, now: datetime) -> None:
    """Recompute the provider's score and rank value after its counters changed, and re-rank
    its offers (their ``rank_price`` is the price per TFLOPS adjusted by the rank value)."""
    provider.score = provider_score(provider, now)
    value = rank_value(provider)
    if abs(value - provider.reputation) < 1e-12:
        return
    provider.reputation = value
    for offer in session.scalars(select(OfferRow).where(OfferRow.provider_id == provider.id)):
        offer.rank_price = rank_price(offer.price_micros, offer.tflops, value)


def add_uptime(
    uptime_days: dict[str, float] | None,
    previous_beat: datetime | None,
    now: datetime,
    offline_after_seconds: float,
) -> dict[str, float]:
    """The uptime buckets with the time since the previous heartbeat counted as online (when
    the provider was not offline in between), split at midnight, older than 31 days dropped."""
    days = dict(uptime_days or {})
    if previous_beat is not None and timedelta(0) < now - previous_beat <= timedelta(
        seconds=offline_after_seconds
    ):
        start = previous_beat
        while start < now:
            midnight = datetime.combine(start.date() + timedelta(days=1), datetime.min.time())
            midnight = midnight.replace(tzinfo=start.tzinfo)
            end = min(now, midnight)
            key = start.date().isoformat()
            days[key] = days.get(key, 0.0) + (end - start).total_seconds()
            start = end
    oldest = (now - timedelta(days=UPTIME_DAYS + 1)).date().isoformat()
    return {day: seconds for day, seconds in days.items() if day >= oldest}
