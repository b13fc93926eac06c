"""Verification economics: does cheating lose money at the market's real default parameters?

Run: ``python bench/economics.py [--jobs 2000] [--trials 200] [--seed 7] [--quick]``.

A Monte Carlo of ``verification: sampled`` on deterministic jobs: after a provider's result is
committed, the market re-runs the job on another provider with probability p (a secret draw)
and compares canonical output digests; on a mismatch a third independent run breaks the tie
and the provider in the minority is slashed S = max(min_stake, stake_multiple x A) (the
``slash_share_bps`` share to the verification pool, the rest to the treasury) and loses its
payment R (the developer is refunded everything, the premium included). p comes from the
provider's public counters through ``services/reputation.py`` (``score``,
``sampling_rate``, ``rank_value``), the terms from ``DEFAULT_TERMS`` and the rates from
``CoordinatorSettings``: nothing is hard-coded, so the bench always matches the code.

Strategies: honest; cheating on 1 %, 10 %, 50 %, 100 % of jobs (a cheat skips the work, saving
its compute cost C, and returns a wrong digest); lazy (skips every job: on a deterministic job
it cannot know the right digest without running it, so it is caught exactly like a 100 %
cheater whenever sampled); a colluding pair of one owner (both cheat on every job and confirm
each other's wrong digest when picked as re-runner or tie-breaker) in markets of 10 and 100
providers; an honest provider framed by a lying re-runner; honest providers on
non-deterministic jobs (never compared byte for byte, never sampled). Then the market: re-run
overhead and the verification pool's intake against its spend, honest and with cheaters mixed
in, and a PASS/FAIL line for each target. docs/protocol.md ("Verification economics") derives
the defaults and shows this output.

Money per job is the expectation given the state before the job (its p, its price): the same
mean as the realised profit with far less noise; the events that move the state (sampled or
not, caught or not) are drawn. Every strategy sees the same job amounts (common random
numbers), so its profit is compared with the honest provider's on the same jobs.
"""

from __future__ import annotations

import argparse
import math
import random
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from gpumarket.coordinator.services import reputation  # noqa: E402
from gpumarket.coordinator.services.ranking import rank_factor  # noqa: E402
from gpumarket.coordinator.settings import CoordinatorSettings  # noqa: E402
from gpumarket.settlement.deploy import DEFAULT_TERMS  # noqa: E402

MICROS = 1_000_000
CERTAINTY = 0.9999
"""The detection target: a cheater is caught with this probability within its horizon."""
DETECTION_TARGETS = ((0.10, 2_000), (0.01, 20_000))
"""(share of jobs cheated on, jobs): caught with CERTAINTY before that many jobs."""
OVERHEAD_TARGET = 0.05
"""Re-run compute over paid compute, at most."""
DEFAULT_PREMIUM_BPS = 1000
"""The premium when neither the terms nor the settings name one."""
ESTABLISHED_UPTIME = 1.0
"""Every simulated strategy's uptime: the highest score, so the lowest p (conservative)."""


# ------------------------------------------------------------------------------- parameters


@dataclass(frozen=True)
class Params:
    """The market's defaults, read from the code."""

    fee_bps: int
    slash_share_bps: int
    min_stake: int  # micro-units: the floor of the stake a result locks
    stake_multiple: int
    window: int
    challenge_bond: int
    premium_bps: int
    premium_source: str
    settings: CoordinatorSettings

    @property
    def fee(self) -> float:
        return self.fee_bps / 10_000

    @property
    def p_min(self) -> float:
        return self.settings.sampling_rate_min

    def stake(self, amount: int) -> int:
        """S: the stake a result of this amount locks, slashed when it is proven wrong."""
        return max(self.min_stake, self.stake_multiple * amount)

    def premium(self, amount: int) -> int:
        return amount * self.premium_bps // 10_000


def make_settings() -> CoordinatorSettings:
    """The coordinator's default settings (as the tests build them if defaults are refused)."""
    try:
        return CoordinatorSettings()
    except Exception:  # a required setting: build it the way the tests do
        data = Path(tempfile.mkdtemp(prefix="gpumarket-economics-"))
        return CoordinatorSettings(db_url="sqlite://", data_dir=data)


def load_params() -> Params:
    settings = make_settings()
    if "premium_bps" in DEFAULT_TERMS:
        premium, source = int(DEFAULT_TERMS["premium_bps"]), "DEFAULT_TERMS['premium_bps']"
    elif hasattr(settings, "verification_premium_bps"):
        premium = int(settings.verification_premium_bps)
        source = "CoordinatorSettings().verification_premium_bps"
    else:
        premium, source = DEFAULT_PREMIUM_BPS, "bench default (no premium in the code yet)"
    return Params(
        fee_bps=int(DEFAULT_TERMS["fee_bps"]),
        slash_share_bps=int(DEFAULT_TERMS["slash_share_bps"]),
        min_stake=int(DEFAULT_TERMS["min_stake"]),
        stake_multiple=int(DEFAULT_TERMS["stake_multiple"]),
        window=int(DEFAULT_TERMS["window"]),
        challenge_bond=int(DEFAULT_TERMS["challenge_bond"]),
        premium_bps=premium,
        premium_source=source,
        settings=settings,
    )


# ------------------------------------------------------------------------- reputation -> p


@dataclass
class Counters:
    """A provider's public counters, with the attribute names of ``db.models.Provider`` so
    ``reputation.is_newcomer`` and ``reputation.rank_value`` read them as they read a row."""

    completed_jobs: int = 0
    failed_jobs: int = 0
    timed_out_jobs: int = 0
    disputes_lost: int = 0
    reruns_passed: int = 0
    reruns_failed: int = 0
    slashes: int = 0
    score: float | None = None


class Rates:
    """p and the price factor for a provider's counters, from services/reputation (computed
    afresh each time: trajectories rarely repeat, a cache costs more than it saves)."""

    def __init__(self, settings: CoordinatorSettings) -> None:
        self.settings = settings

    def get(
        self,
        completed: int,
        passed: int = 0,
        failed_reruns: int = 0,
        slashes: int = 0,
        failed_jobs: int = 0,
        timed_out: int = 0,
        uptime: float = ESTABLISHED_UPTIME,
    ) -> tuple[float, float]:
        """(p, k): the sampling rate and the price factor that keeps the provider's place in
        matching next to a perfect-score provider (``rank_factor`` of its rank value)."""
        c = Counters(completed, failed_jobs, timed_out, 0, passed, failed_reruns, slashes)
        if not reputation.is_newcomer(c):  # type: ignore[arg-type]
            c.score = reputation.score(
                completed, failed_jobs, timed_out, 0, passed, failed_reruns, slashes, uptime
            )
        p = reputation.sampling_rate(c.score, passed, failed_reruns, self.settings)
        k = rank_factor(reputation.rank_value(c)) / rank_factor(1.0)  # type: ignore[arg-type]
        return p, k


# ------------------------------------------------------------------------------ strategies


@dataclass(frozen=True)
class Strategy:
    name: str
    cheat: float = 0.0  # share of its jobs it skips and answers with a wrong digest
    market: int = 0  # a colluding pair: providers in the market (0: no partner)
    framed: bool = False  # every re-run of its jobs is done by a liar
    deterministic: bool = True  # False: never compared, never sampled

    @property
    def partner_rerun(self) -> float:
        """s: the partner's share of the eligible re-runners (all but the provider)."""
        return 1 / (self.market - 1) if self.market else 0.0

    @property
    def partner_tiebreak(self) -> float:
        """t: the partner's share of the eligible tie-breakers (all but provider, re-runner)."""
        return 1 / (self.market - 2) if self.market else 0.0

    @property
    def caught_if_sampled(self) -> float:
        """d: the chance a sampled cheat is caught (1 unless the partner re-runs or breaks the
        tie)."""
        s, t = self.partner_rerun, self.partner_tiebreak
        return (1 - s) * (1 - t)


STRATEGIES = (
    Strategy("honest"),
    Strategy("cheats on 1 %", cheat=0.01),
    Strategy("cheats on 10 %", cheat=0.10),
    Strategy("cheats on 50 %", cheat=0.50),
    Strategy("cheats on 100 %", cheat=1.0),
    Strategy("lazy (never runs)", cheat=1.0),
    Strategy("colluding pair, 10 providers", cheat=1.0, market=10),
    Strategy("colluding pair, 100 providers", cheat=1.0, market=100),
    Strategy("honest, framed by a liar", framed=True),
    Strategy("honest, non-deterministic", deterministic=False),
)
HONEST_KINDS = ("honest", "honest, framed by a liar", "honest, non-deterministic")


@dataclass
class Tally:
    """One strategy over every trial: money in micro-units, per-job sums."""

    jobs: int = 0
    amount: float = 0.0  # sum of the job amounts A (V = 0: its own price)
    profit: float = 0.0  # expected profit, price kept (V = 0)
    profit_rank: float = 0.0  # expected profit, price cut to keep its place in matching
    realised: float = 0.0  # realised profit, price kept (noisy)
    slashes: int = 0
    catches: list[int | None] = field(default_factory=list)  # per trial: first catch (job #)
    verify_runs: float = 0.0  # expected verification runs paid, weighted by amount
    intake: float = 0.0  # expected premiums kept + slash shares, into the pool
    spend: float = 0.0  # expected pay of re-runs and tie-breaks, out of the pool
    treasury: float = 0.0
    outvoted: int = 0  # honest re-runners outvoted by a colluding pair
    liar_lies: int = 0  # framed: wrong re-runs the liar returned (each unpaid, a failed re-run)

    def per_job(self, value: float) -> float:
        return value / self.jobs / MICROS if self.jobs else 0.0


def amounts_for(trial: int, jobs: int, lo: float, hi: float, seed: int) -> list[int]:
    """The trial's job amounts in micro-units: log-uniform in [lo, hi] tokens."""
    rng = random.Random(f"amounts:{seed}:{trial}")
    a, b = math.log(lo), math.log(hi)
    return [max(1, round(math.exp(rng.uniform(a, b)) * MICROS)) for _ in range(jobs)]


def simulate(
    strategy: Strategy,
    params: Params,
    rates: Rates,
    amounts: Sequence[int],
    rng: random.Random,
    cost_ratio: float,
    tally: Tally,
) -> None:
    """One provider playing ``strategy`` over ``amounts`` (one trial), into ``tally``."""
    fee_bps, share = params.fee_bps, params.slash_share_bps / 10_000
    completed = passed = failed = slashes = 0
    first_catch: int | None = None
    s, t, d = strategy.partner_rerun, strategy.partner_tiebreak, strategy.caught_if_sampled
    f = strategy.cheat
    fee, m, floor = fee_bps / 10_000, params.stake_multiple, params.min_stake
    premium_share = params.premium_bps / 10_000
    for number, amount in enumerate(amounts, 1):
        p, k = rates.get(completed, passed, failed, slashes)
        if not strategy.deterministic:
            p = 0.0  # never compared byte for byte: no re-run, no premium
        cost = cost_ratio * amount
        q = p * d  # a cheat is caught
        confirmed = p * (s + (1 - s) * t)  # the partner re-runs or breaks the tie: it is paid
        # expected profit at its own price (V = 0) and at the price that holds its rank
        for price, column in ((amount, 0), (amount * k, 1)):
            pay = price * (1 - fee)  # R
            stake = max(floor, m * price)  # S
            cheat = (1 - q) * pay - q * stake + confirmed * price
            expected = (1 - f) * (pay - cost) + f * cheat
            if column == 0:
                tally.profit += expected
            else:
                tally.profit_rank += expected
        tally.jobs += 1
        tally.amount += amount
        if p:
            stake = max(floor, m * amount)
            premium = premium_share * amount
            # runs the pool pays: the partner's confirming re-run (1), the partner's tie-break
            # (1: the outvoted honest re-runner is not paid), a catch (re-run + tie-break: 2)
            runs = ((1 - f) * p + f * (confirmed + 2 * q)) * amount
            tally.verify_runs += runs
            tally.spend += runs
            tally.intake += (1 - f * q) * premium + f * q * share * stake
            tally.treasury += f * q * (1 - share) * stake
        # the events that move the state
        cheats = f > 0 and (f >= 1 or rng.random() < f)
        sampled = p > 0 and rng.random() < p
        pay = amount - amount * fee_bps // 10_000
        if not cheats:
            tally.realised += pay - cost
            completed += 1
            if sampled:
                passed += 1  # an honest re-runner agrees, or the tie-break clears it
                if strategy.framed:
                    tally.liar_lies += 1
            continue
        if not sampled:
            tally.realised += pay
            completed += 1
            continue
        if strategy.market and rng.random() < s:  # the partner re-runs: digests match
            tally.realised += pay + amount
            completed += 1
            passed += 1
            continue
        if strategy.market and rng.random() < t:  # the partner breaks the tie: 2 against 1
            tally.realised += pay + amount
            completed += 1
            passed += 1
            tally.outvoted += 1
            continue
        tally.realised -= params.stake(amount)  # caught: R withheld, S slashed
        failed += 1
        slashes += 1
        tally.slashes += 1
        if first_catch is None:
            first_catch = number
    tally.catches.append(first_catch)


def run_strategies(
    params: Params,
    rates: Rates,
    jobs: int,
    trials: int,
    seed: int,
    cost_ratio: float,
    lo: float,
    hi: float,
) -> dict[str, Tally]:
    tallies = {s.name: Tally() for s in STRATEGIES}
    for trial in range(trials):
        amounts = amounts_for(trial, jobs, lo, hi, seed)
        for strategy in STRATEGIES:
            rng = random.Random(f"{strategy.name}:{seed}:{trial}")
            simulate(strategy, params, rates, amounts, rng, cost_ratio, tallies[strategy.name])
    return tallies


# ------------------------------------------------------------------------------- detection


@dataclass(frozen=True)
class Detection:
    """When a cheater is first caught, from the exact survival product over its p schedule."""

    median: int
    tail: int  # the CERTAINTY quantile
    caught_by: dict[int, float]  # jobs -> P(caught within its first `jobs` jobs)


def detection(rates: Rates, cheat: float, d: float, horizons: Sequence[int] = ()) -> Detection:
    """P(caught within n jobs) = 1 - prod_{i<n} (1 - f d p_i), with p_i what
    ``sampling_rate`` gives before job i+1 if the provider was not caught yet, computed with
    every one of its jobs counted as also a passed re-run and uptime 1: the highest score the
    counters allow, hence the lowest p; a lower bound on detection."""
    survive, n = 1.0, 0
    median = tail = 0
    caught_by: dict[int, float] = {}
    wanted = set(horizons)
    while not tail or n < max(wanted, default=0):
        p, _ = rates.get(n, n)
        survive *= 1 - cheat * d * p
        n += 1
        if not median and 1 - survive >= 0.5:
            median = n
        if not tail and 1 - survive >= CERTAINTY:
            tail = n
        if n in wanted:
            caught_by[n] = 1 - survive
        if n > 10_000_000:
            raise RuntimeError("detection does not converge: p is 0")
    return Detection(median, tail, caught_by)


# ---------------------------------------------------------------------------- closed forms


def required_multiple(params: Params, p: float) -> float:
    """m such that p (1 - fee + m) >= 1: cheating never pays with C <= A, d = 1, V = 0."""
    return 1 / p - (1 - params.fee)


def required_rate(cheat: float, jobs: int) -> float:
    """p such that 1 - (1 - f p)^N >= CERTAINTY, to first order: ln(1/(1-CERTAINTY)) / (f N)."""
    return math.log(1 / (1 - CERTAINTY)) / (cheat * jobs)


def cheat_gain(params: Params, p: float, cost_ratio: float, d: float = 1.0) -> float:
    """Expected gain of cheating on one job over running it, per unit of amount (amount above
    the stake floor, V = 0): C - p d (R + S)."""
    return cost_ratio - p * d * (1 - params.fee + params.stake_multiple)


def pair_break_even_share(params: Params, p: float, cost_ratio: float) -> float:
    """The partner's share s of re-runners (and of tie-breakers) above which a colluding pair's
    cheat pays on one job (V = 0): caught with p (1-s)^2, paid a run when the partner
    confirms, p (1 - (1-s)^2); cheating pays when c + p > p (1-s)^2 (2 - fee + m)."""
    x = (cost_ratio + p) / (p * (2 - params.fee + params.stake_multiple))
    return 1 - math.sqrt(x) if x < 1 else 0.0


# ---------------------------------------------------------------------------------- market


@dataclass(frozen=True)
class Market:
    overhead: float  # verification runs over jobs, weighted by amount (= re-run / paid compute)
    intake: float  # per job, tokens
    spend: float
    treasury: float
    exact_overhead: float  # the population's mean p (no draws)


def population(
    params: Params, rates: Rates, count: int, newcomer_share: float, rng: random.Random
) -> list[float]:
    """The p of each provider of an honest market: ``newcomer_share`` newcomers (fewer than
    NEWCOMER_JOBS finished jobs), the rest established (50..5,000 jobs, log-uniform; 1 %
    failed, 0.5 % timed out; passed re-runs p_min x jobs; uptime 95..100 %)."""
    ps = []
    for i in range(count):
        if i < round(count * newcomer_share):
            done = rng.randrange(reputation.NEWCOMER_JOBS)
            ps.append(rates.get(done)[0])
            continue
        done = round(math.exp(rng.uniform(math.log(50), math.log(5_000))))
        uptime = round(rng.uniform(0.95, 1.0), 3)
        ps.append(
            rates.get(
                done,
                passed=round(params.p_min * done),
                failed_jobs=round(done * 0.01),
                timed_out=round(done * 0.005),
                uptime=uptime,
            )[0]
        )
    return ps


def honest_market(
    params: Params, ps: Sequence[float], jobs: int, lo: float, hi: float, rng: random.Random
) -> Market:
    """Jobs spread evenly over the population; each re-run with its provider's p (drawn)."""
    a, b = math.log(lo), math.log(hi)
    amount = runs = intake = spend = 0.0
    for _ in range(jobs):
        p = ps[rng.randrange(len(ps))]
        value = max(1, round(math.exp(rng.uniform(a, b)) * MICROS))
        amount += value
        intake += params.premium(value)
        if rng.random() < p:
            runs += value
            spend += value  # the honest re-runner is paid about the job's amount
    return Market(
        overhead=runs / amount,
        intake=intake / jobs / MICROS,
        spend=spend / jobs / MICROS,
        treasury=0.0,
        exact_overhead=statistics.fmean(ps),
    )


@dataclass(frozen=True)
class MarketChecks:
    """What the market's own checks cost the pool, per job of the market, as a share of the
    mean job's amount: a known-answer replay for every new provider (services/verification.py:
    due at once), and liveness re-runs of the optimistic jobs that are not deterministic run
    by newcomers (drawn with sampling_rate_new)."""

    known_answer: float
    liveness: float

    def spend(self, sampled_share: float) -> float:
        """Per job of a market where ``sampled_share`` of the jobs are sampled and the rest
        optimistic and not deterministic."""
        return self.known_answer + (1 - sampled_share) * self.liveness

    def break_even(self, premium_share: float, rerun_share: float) -> float:
        """The smallest sampled share whose premiums (less their re-runs) pay for these
        checks: x (premium - p) >= known_answer + (1 - x) liveness."""
        margin = premium_share - rerun_share + self.liveness
        return min(1.0, (self.known_answer + self.liveness) / margin) if margin > 0 else 1.0


def market_checks(settings: CoordinatorSettings, newcomer_share: float) -> MarketChecks:
    """The checks' cost at ``newcomer_share`` of jobs run by newcomers. A newcomer runs
    NEWCOMER_JOBS jobs before it has a score, so new providers arrive at most at
    newcomer_share / NEWCOMER_JOBS per job (the bound: every newcomer job is a first-timer's)."""
    arrivals = newcomer_share / reputation.NEWCOMER_JOBS
    liveness = newcomer_share * settings.sampling_rate_new if settings.liveness_sampling else 0.0
    return MarketChecks(
        known_answer=arrivals if settings.known_answer_share > 0 else 0.0, liveness=liveness
    )


def mixed_market(honest: Market, tallies: dict[str, Tally], cheater_share: float) -> Market:
    """The honest market with ``cheater_share`` of its jobs run by the cheating strategies,
    in equal parts (their pool flows from the strategy simulation)."""
    cheaters = [t for name, t in tallies.items() if name not in HONEST_KINDS]
    each = cheater_share / len(cheaters)
    mean_amount = statistics.fmean(t.per_job(t.amount) for t in cheaters)
    runs = (1 - cheater_share) * honest.overhead * mean_amount
    runs += sum(each * t.per_job(t.verify_runs) for t in cheaters)
    intake = (1 - cheater_share) * honest.intake + sum(each * t.per_job(t.intake) for t in cheaters)
    spend = (1 - cheater_share) * honest.spend + sum(each * t.per_job(t.spend) for t in cheaters)
    treasury = sum(each * t.per_job(t.treasury) for t in cheaters)
    return Market(
        overhead=runs / mean_amount,
        intake=intake,
        spend=spend,
        treasury=treasury,
        exact_overhead=honest.exact_overhead,
    )


# ---------------------------------------------------------------------------------- report


def verdict(ok: bool) -> str:
    return "PASS" if ok else "*** FAIL ***"


NUMBER = re.compile(r"[-+>]?[\d,.]+( %)?")


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |")
    print("| " + " | ".join("-" * w for w in widths) + " |")
    for row in rows:
        cells = [
            str(c).rjust(w) if NUMBER.fullmatch(str(c)) else str(c).ljust(w)
            for c, w in zip(row, widths, strict=True)
        ]
        print("| " + " | ".join(cells) + " |")
    print()


def pct(x: float, digits: int = 2) -> str:
    return f"{100 * x:.{digits}f} %"


def catches_median(catches: Sequence[int | None], jobs: int) -> str:
    ordered = sorted(c if c is not None else math.inf for c in catches)
    mid = ordered[len(ordered) // 2]
    return f">{jobs:,}" if mid == math.inf else f"{int(mid):,}"


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--jobs", type=int, help="jobs per provider per trial (default 2000)")
    ap.add_argument("--trials", type=int, help="trials per strategy (default 200)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument(
        "--quick", action="store_true", help="a fast smoke run: 300 jobs x 20 trials, 200 providers"
    )
    ap.add_argument("--cost-ratio", type=float, default=0.7, help="compute cost C over A")
    ap.add_argument("--min-amount", type=float, default=0.01, help="smallest job, tokens")
    ap.add_argument("--max-amount", type=float, default=100.0, help="largest job, tokens")
    ap.add_argument("--providers", type=int, help="honest market's providers (default 1000)")
    ap.add_argument("--newcomer-share", type=float, default=None, help="default: explore_share")
    ap.add_argument("--cheater-share", type=float, default=0.10, help="of the mixed market")
    args = ap.parse_args(argv)
    jobs, trials, providers = (300, 20, 200) if args.quick else (2000, 200, 1000)
    args.jobs = args.jobs or jobs
    args.trials = args.trials or trials
    args.providers = args.providers or providers
    started = time.perf_counter()
    params = load_params()
    settings = params.settings
    rates = Rates(settings)
    newcomer_share = args.newcomer_share
    if newcomer_share is None:
        newcomer_share = float(getattr(settings, "explore_share", 0.1))

    print("# Verification economics (bench/economics.py)\n")
    print(
        f"terms (DEFAULT_TERMS): fee {params.fee_bps} bps, slash share {params.slash_share_bps} "
        f"bps, min stake {params.min_stake / MICROS:g} tokens, stake multiple "
        f"{params.stake_multiple}, window {params.window} s, challenge bond "
        f"{params.challenge_bond / MICROS:g} tokens"
    )
    print(f"premium: {params.premium_bps} bps (from {params.premium_source})")
    print(
        f"sampling (CoordinatorSettings): min {settings.sampling_rate_min}, new "
        f"{settings.sampling_rate_new}, suspect {settings.sampling_rate_suspect}, clear after "
        f"{settings.suspect_clear_passes} passes; NEWCOMER_JOBS {reputation.NEWCOMER_JOBS}, "
        f"re-run failure weight {reputation.RERUN_FAIL_WEIGHT}, slash factor "
        f"{reputation.SLASH_FACTOR}"
    )
    print(
        f"run: {args.jobs:,} jobs x {args.trials} trials per strategy, seed {args.seed}, "
        f"A log-uniform {args.min_amount:g}..{args.max_amount:g} tokens, C = "
        f"{args.cost_ratio:g} A; every strategy's uptime {ESTABLISHED_UPTIME:g}; a re-run "
        "or tie-break is paid the job's amount from the pool\n"
    )

    tallies = run_strategies(
        params,
        rates,
        args.jobs,
        args.trials,
        args.seed,
        args.cost_ratio,
        args.min_amount,
        args.max_amount,
    )
    honest = tallies["honest"]
    base, base_rank = honest.per_job(honest.profit), honest.per_job(honest.profit_rank)

    print("## Profit per job (tokens; same jobs for every strategy)\n")
    print(
        "V = 0: the provider keeps its price (only p rises after a catch). Holding rank: it "
        "cuts its price by rank_factor(rank value) to keep its place in matching, the future "
        "earnings V a lower score costs.\n"
    )
    rows = []
    for s in STRATEGIES:
        t = tallies[s.name]
        rows.append(
            [
                s.name,
                f"{t.per_job(t.profit):.4f}",
                f"{base:.4f}",
                f"{t.per_job(t.profit) / base:.3f}",
                f"{t.per_job(t.profit_rank):.4f}",
                f"{t.per_job(t.profit_rank) / base_rank:.3f}",
                f"{t.per_job(t.realised):.4f}",
                f"{1000 * t.slashes / t.jobs:.2f}",
            ]
        )
    table(
        [
            "strategy",
            "profit/job",
            "honest",
            "ratio",
            "holding rank",
            "ratio",
            "realised",
            "slashes/1k jobs",
        ],
        rows,
    )

    print("## Jobs until first caught\n")
    print(
        "Exact: the survival product over the p schedule sampling_rate gives an uncaught "
        "cheater, each job also counted a passed re-run, uptime 1 (the lowest p its counters "
        "allow: a lower bound on detection). Monte Carlo: first catch in the trials above.\n"
    )
    rows = []
    detections: dict[str, Detection] = {}
    horizons = [n for _, n in DETECTION_TARGETS] + [args.jobs]
    for s in STRATEGIES:
        if not s.cheat:
            continue
        det = detection(rates, s.cheat, s.caught_if_sampled, horizons)
        detections[s.name] = det
        t = tallies[s.name]
        caught = sum(c is not None for c in t.catches) / len(t.catches)
        rows.append(
            [
                s.name,
                f"{s.cheat * s.caught_if_sampled:.4f}",
                f"{det.median:,}",
                f"{det.tail:,}",
                f"{det.caught_by[2_000]:.6f}",
                f"{det.caught_by[20_000]:.8f}",
                catches_median(t.catches, args.jobs),
                f"{caught:.3f}",
                f"{det.caught_by[args.jobs]:.3f}",
            ]
        )
    table(
        [
            "strategy",
            "f x d",
            "median (exact)",
            "99.99th pct (exact)",
            "P(caught in 2,000)",
            "P(caught in 20,000)",
            "median (MC)",
            f"caught in {args.jobs:,} (MC)",
            "(exact)",
        ],
        rows,
    )
    print(
        "lazy: on a deterministic job the right digest cannot be known without running it, so "
        "a lazy provider is caught like a 100 % cheater whenever sampled (same model: the "
        "exact rows are identical, the Monte Carlo draws independent). The pair's d is the "
        "chance that neither the re-runner nor the tie-breaker is the partner.\n"
    )

    framed = tallies["honest, framed by a liar"]
    pairs = [tallies[s.name] for s in STRATEGIES if s.market]
    print("## Honest providers\n")
    table(
        ["case", "jobs", "slashed", "outvoted", "notes"],
        [
            [
                "honest, deterministic",
                f"{honest.jobs:,}",
                str(honest.slashes),
                "0",
                "every re-run agrees",
            ],
            [
                "honest, framed by a liar",
                f"{framed.jobs:,}",
                str(framed.slashes),
                "0",
                f"{framed.liar_lies:,} lies, each broken by an honest tie-breaker: liar unpaid, "
                "its reruns_failed +1",
            ],
            [
                "honest, non-deterministic",
                f"{tallies['honest, non-deterministic'].jobs:,}",
                str(tallies["honest, non-deterministic"].slashes),
                "0",
                "never compared byte for byte: liveness only",
            ],
            [
                "honest re-runners vs a colluding pair",
                f"{sum(t.jobs for t in pairs):,}",
                "-",
                f"{sum(t.outvoted for t in pairs):,}",
                "outvoted 2 to 1 when the partner breaks the tie (unpaid; slashed only if a "
                "re-run locks stake)",
            ],
        ],
    )

    rng = random.Random(f"market:{args.seed}")
    ps = population(params, rates, args.providers, newcomer_share, rng)
    market_jobs = max(args.jobs * args.trials // 2, 10_000)
    hm = honest_market(params, ps, market_jobs, args.min_amount, args.max_amount, rng)
    established = ps[round(len(ps) * newcomer_share) :]
    mm = mixed_market(hm, tallies, args.cheater_share)
    print("## Market\n")
    print(
        f"Honest market: {args.providers} providers, {pct(newcomer_share, 0)} newcomers "
        f"(fewer than {reputation.NEWCOMER_JOBS} jobs: p = sampling_rate_new; the matcher "
        "sends explore_share of matches to newcomers first), the rest established (50..5,000 "
        "jobs, 1 % failed, 0.5 % timed out, uptime 95..100 %), each running the same share of "
        f"{market_jobs:,} sampled jobs. Mixed: {pct(args.cheater_share, 0)} of the jobs run by "
        "the cheating strategies above in equal parts (their slash share counts as intake, a "
        "caught job's premium is refunded).\n"
    )
    table(
        ["market", "overhead", "premium+slash intake/job", "re-run spend/job", "pool net/job"],
        [
            [
                "honest",
                pct(hm.overhead),
                f"{hm.intake:.4f}",
                f"{hm.spend:.4f}",
                f"{hm.intake - hm.spend:+.4f}",
            ],
            [
                "with cheaters",
                pct(mm.overhead),
                f"{mm.intake:.4f}",
                f"{mm.spend:.4f}",
                f"{mm.intake - mm.spend:+.4f}",
            ],
        ],
    )
    est_p = statistics.fmean(established)
    crossing = (OVERHEAD_TARGET - est_p) / (settings.sampling_rate_new - est_p)
    new_max = est_p + (OVERHEAD_TARGET - est_p) / newcomer_share if newcomer_share else 1.0
    print(
        f"exact mean p: {pct(hm.exact_overhead)} overall, {pct(est_p, 3)} on established "
        f"providers. The {pct(OVERHEAD_TARGET, 0)} target holds while newcomers run at most "
        f"{pct(max(crossing, 0.0))} of sampled jobs, or, with {pct(newcomer_share, 0)} "
        f"newcomer jobs, while sampling_rate_new <= {new_max:.4f}. Treasury from slashes "
        f"(mixed): {mm.treasury:.4f}/job.\n"
    )

    checks_cost = market_checks(settings, newcomer_share)
    premium_share = params.premium_bps / 10_000
    mean_amount = hm.intake / premium_share if premium_share else 0.0
    known_spend = checks_cost.known_answer * mean_amount
    print("## The market's own checks\n")
    print(
        "Known-answer replays (one for every new provider, at once; then known_answer_share "
        "of a suspect's jobs) and liveness re-runs (an optimistic job that is not "
        "deterministic, run by a newcomer, drawn with sampling_rate_new) are paid from the "
        f"pool and bring no premium. New providers arrive at most {checks_cost.known_answer:.4f}"
        f" per job ({pct(newcomer_share, 0)} newcomer jobs / {reputation.NEWCOMER_JOBS} jobs "
        "each, every newcomer job a first-timer's: the bound).\n"
    )
    table(
        ["check", "runs per market job", "pool spend/job", "honest pool net/job with it"],
        [
            [
                "known-answer replays",
                f"{checks_cost.known_answer:.4f}",
                f"{known_spend:.4f}",
                f"{hm.intake - hm.spend - known_spend:+.4f}",
            ],
            [
                "liveness (per optimistic job, not deterministic)",
                f"{checks_cost.liveness:.4f}",
                f"{checks_cost.liveness * mean_amount:.4f}",
                "-",
            ],
        ],
    )
    sampled_min = checks_cost.break_even(premium_share, hm.overhead)
    print(
        f"The pool pays for both while at least {pct(sampled_min)} of the market's jobs are "
        "sampled (their premium less their re-runs covers the checks); below that the operator "
        "tops it up (`fundPool`), and a replay or liveness run waits for its pay until it can "
        "be paid.\n"
    )

    print("## Closed forms at the defaults\n")
    fee = params.fee
    for f, n in DETECTION_TARGETS:
        print(
            f"detection: f = {f:g}, N = {n:,}: p >= ln(10^4) / (f N) = {required_rate(f, n):.4f}"
            f" (exact: {1 - (1 - CERTAINTY) ** (1 / n):.6f} / f = "
            f"{(1 - (1 - CERTAINTY) ** (1 / n)) / f:.4f})"
        )
    print(
        f"payoff: p_min (1 - fee + m) = {params.p_min} x {1 - fee + params.stake_multiple:g} = "
        f"{params.p_min * (1 - fee + params.stake_multiple):.4f} (>= 1: cheating never pays "
        f"with C <= A); m needed at p_min: {required_multiple(params, params.p_min):.3f}"
    )
    print(
        f"one-job gain of cheating at p_min (V = 0, per unit of A): C = A: "
        f"{cheat_gain(params, params.p_min, 1.0):+.4f}; C = {args.cost_ratio:g} A: "
        f"{cheat_gain(params, params.p_min, args.cost_ratio):+.4f}"
    )
    print(
        f"colluding pair (partner's share s of re-runners and tie-breakers, at p_min, V = 0): "
        f"cheating pays above s = {pct(pair_break_even_share(params, params.p_min, 1.0))} "
        f"with C = A, {pct(pair_break_even_share(params, params.p_min, args.cost_ratio))} with "
        f"C = {args.cost_ratio:g} A (10 providers: s = {pct(1 / 9)}; 100: {pct(1 / 99)})\n"
    )

    checks: list[tuple[str, bool]] = []
    worst = max(
        (t.per_job(t.profit) / base, name)
        for name, t in tallies.items()
        if name not in HONEST_KINDS
    )
    worst_rank = max(
        (t.per_job(t.profit_rank) / base_rank, name)
        for name, t in tallies.items()
        if name not in HONEST_KINDS
    )
    checks.append(
        (
            f"every cheating strategy earns less than honesty (best: {worst[1]}, "
            f"{worst[0]:.3f} of honest; holding rank: {worst_rank[0]:.3f})",
            worst[0] < 1 and worst_rank[0] < 1,
        )
    )
    for f, n in DETECTION_TARGETS:
        name = f"cheats on {f * 100:g} %"
        got = detections[name].caught_by[n]
        checks.append(
            (f"{name} caught before {n:,} jobs with P = {got:.6f} >= {CERTAINTY}", got >= CERTAINTY)
        )
    checks.append(
        (
            f"overhead {pct(hm.overhead)} <= {pct(OVERHEAD_TARGET, 0)} (honest market, "
            f"{pct(newcomer_share, 0)} newcomers)",
            hm.overhead <= OVERHEAD_TARGET,
        )
    )
    honest_slashes = honest.slashes + framed.slashes
    checks.append(
        (
            f"honest providers on deterministic jobs never slashed ({honest_slashes} slashes, "
            "framed included)",
            honest_slashes == 0,
        )
    )
    checks.append(
        (
            f"pool intake >= spend: honest {hm.intake:.4f} >= {hm.spend:.4f} + known-answer "
            f"replays {known_spend:.4f}, with cheaters {mm.intake:.4f} >= {mm.spend:.4f}",
            hm.intake >= hm.spend + known_spend and mm.intake >= mm.spend,
        )
    )
    print("## Targets\n")
    for text, ok in checks:
        print(f"{verdict(ok):>12}  {text}")
    outvoted = sum(t.outvoted for t in pairs)
    if outvoted:
        print(
            f"{'WARN':>12}  a colluding pair outvoted {outvoted:,} honest re-runners "
            f"({1000 * outvoted / sum(t.jobs for t in pairs):.2f} per 1k pair jobs)"
        )
    print(
        f"\nGensyn claims verification at about 1/100 of the compute cost at 99.99 % certainty. "
        f"Here: {pct(est_p)} of compute (1/{1 / est_p:.0f}) on established providers, "
        f"{pct(hm.overhead)} (1/{1 / hm.overhead:.0f}) market-wide, at "
        f"{pct(detections['cheats on 10 %'].caught_by[2_000], 4)} certainty of catching a 10 % "
        f"cheater within 2,000 jobs (a single cheated job is caught with p >= {params.p_min}; "
        "the slash makes each cheat a loss in expectation)."
    )
    failed = [text for text, ok in checks if not ok]
    if failed:
        print(f"\n*** {len(failed)} target(s) FAILED ***")
    else:
        print("\nall targets pass")
    print(f"wall time {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
