"""The one table from the market contract's reverts to the errors people read.

Every caller that sends to the contract, the coordinator's market client (a developer's order,
a provider's claim) and a user's own wallet (deposits, stakes, withdrawals, challenges), turns
a revert into what to fix through :func:`refusal`. A revert is looked up by the function that
was called and the contract's error name, then by the error name alone for the wallet's calls;
one listed nowhere stays the :class:`~gpumarket.errors.ContractReverted` itself (or, for a
wallet, a plain "would revert" naming it).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from gpumarket.errors import (
    ConfigurationError,
    Conflict,
    ContractReverted,
    GpumarketError,
    InvalidRequest,
    PaymentRequired,
    ServiceUnavailable,
)
from gpumarket.protocol import from_micros

CHAIN_JOB_STATES = ("None", "Open", "Committed", "Disputed", "Settled", "Refunded", "Cancelled")
"""The contract's ``State`` enum, by value."""

_WHY_NOT_CHALLENGED = {
    "None": "the market has no escrow for it",
    "Open": "no result has been committed yet",
    "Disputed": "it is already disputed",
    "Settled": "its challenge window has closed and it is paid",
    "Refunded": "it ended without a result and its escrow was refunded",
    "Cancelled": "it was cancelled and its escrow refunded",
}

Refusal = Callable[[str, list[Any]], GpumarketError]
"""Builds the error for one revert from the called function and the error's arguments."""


def when(unix_time: int, now: float | None = None) -> str:
    """A unix time for people: the local date and time, and how long until then."""
    at = datetime.fromtimestamp(unix_time, UTC).astimezone()
    left = int(unix_time - (datetime.now(UTC).timestamp() if now is None else now))
    if left <= 0:
        return f"{at:%Y-%m-%d %H:%M:%S %Z}"
    days, rest = divmod(left, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [f"{n} {unit}" for n, unit in ((days, "d"), (hours, "h"), (minutes, "min")) if n]
    wait = " ".join(parts[:2]) if parts else f"{seconds} s"
    return f"{at:%Y-%m-%d %H:%M:%S %Z} (in {wait})"


def _order_unfunded(function: str, args: list[Any]) -> GpumarketError:
    if not args:  # a revert found on-chain carries no figures
        return PaymentRequired(
            "your deposit in the market no longer covers this job's escrow (another order took "
            "it first): deposit more with `gpumarket wallet deposit AMOUNT` and sign again"
        )
    available, needed = args
    return PaymentRequired(
        f"your deposit in the market is {from_micros(available)}, but this job's escrow "
        f"needs {from_micros(needed)}: deposit more with `gpumarket wallet deposit AMOUNT` "
        "and sign again"
    )


def _order_unknown_signer(function: str, args: list[Any]) -> GpumarketError:
    return PaymentRequired(
        f"the order is signed by {args[0]}, which has never deposited in the market: "
        "deposit with `gpumarket wallet deposit AMOUNT` from the wallet that signs"
    )


def _order_expired(function: str, args: list[Any]) -> GpumarketError:
    return InvalidRequest(
        f"the order expired at {args[0]} (chain time {args[1]}); submit the job again"
    )


def _stake_too_low(function: str, args: list[Any]) -> GpumarketError:
    if not args:  # a revert found on-chain carries no figures
        return PaymentRequired(
            "your free stake no longer covers what a result locks (another result took it "
            "first): run `gpumarket provider stake AMOUNT`, then report the result again"
        )
    free, needed = args
    return PaymentRequired(
        f"your free stake is {from_micros(free)}, under the {from_micros(needed)} this result "
        "must lock (the market's minimum stake, or its stake multiple times the amount "
        "claimed when that is more): run `gpumarket provider stake AMOUNT`, then report the "
        "result again"
    )


def _claim_unknown_signer(function: str, args: list[Any]) -> GpumarketError:
    return InvalidRequest(
        "the result claim is not signed by a wallet the market knows; stake from the wallet "
        "the provider daemon signs with"
    )


def _short(function: str, args: list[Any]) -> GpumarketError:
    return PaymentRequired(
        f"{function}: only {from_micros(int(args[0]))} is available, "
        f"{from_micros(int(args[1]))} asked"
    )


def _unstake_not_ready(function: str, args: list[Any]) -> GpumarketError:
    return InvalidRequest(
        f"{function}: the unstaked tokens can be withdrawn from {when(int(args[0]))}; "
        "run it again then"
    )


def _wrong_state(function: str, args: list[Any]) -> GpumarketError:
    index = int(args[1]) if len(args) > 1 else -1
    state = CHAIN_JOB_STATES[index] if 0 <= index < len(CHAIN_JOB_STATES) else "unknown"
    why = _WHY_NOT_CHALLENGED.get(state, "") if function == "challenge" else ""
    allowed = {
        "challenge": "; only a Committed result can be challenged",
        "extendWindow": "; only a Committed result's challenge window can be extended",
        "payRerun": "; a re-run is paid only for a job whose result was committed",
    }.get(function, "")
    return InvalidRequest(
        f"{function}: the job is {state} on the chain" + (f" ({why})" if why else "") + allowed
    )


def _extension_too_long(function: str, args: list[Any]) -> GpumarketError:
    extra, most = int(args[0]), int(args[1])
    if most == 0:
        return InvalidRequest("extendWindow: this job's terms allow no extension of its window")
    return InvalidRequest(
        f"extendWindow: {extra} s is more than the {most} s this job's terms let a verifier "
        "add to its challenge window"
    )


def _not_verifier(function: str, args: list[Any]) -> GpumarketError:
    what = {
        "payRerun": "re-runners can be paid from the verification pool",
        "challenge": "the market can challenge a sampled job's result",
    }.get(function, "a sampled job's window can be extended")
    return ConfigurationError(
        f"the coordinator's account {args[0]} does not hold the verifier role on the market: "
        f"the market's admin must call grantRole(VERIFIER_ROLE, that account) before {what}"
    )


def _pool_short(function: str, args: list[Any]) -> GpumarketError:
    if not args:  # a revert found on-chain carries no figures
        return ServiceUnavailable(
            "payRerun: the verification pool cannot pay this re-run yet; it is paid once "
            "premiums (or a `fundPool`) refill the pool"
        )
    pool, needed = int(args[0]), int(args[1])
    return ServiceUnavailable(
        f"payRerun: the verification pool holds {from_micros(pool)}, under the "
        f"{from_micros(needed)} this re-run claims; it is paid once premiums (or a "
        "`fundPool`) refill the pool"
    )


def _rerun_claim_unknown_signer(function: str, args: list[Any]) -> GpumarketError:
    return InvalidRequest(
        f"payRerun: the re-run's claim is signed by {args[0]}, which has no account in the "
        "market: the re-runner must stake (or deposit) from the wallet its daemon signs with"
    )


_PAUSED = "the market is paused: no new jobs are opened until the operator resumes"

REFUSALS: dict[tuple[str | None, str], Refusal] = {
    # the coordinator relaying a developer's order (openJob, or openMany one by one)
    ("openJob", "InsufficientBalance"): _order_unfunded,
    ("openJob", "BadSignature"): _order_unknown_signer,
    ("openJob", "OrderExpired"): _order_expired,
    ("openJob", "WrongState"): lambda f, a: Conflict("this job's escrow was already opened"),
    ("openJob", "EnforcedPause"): lambda f, a: Conflict(_PAUSED),
    # the coordinator committing a provider's signed claim
    ("commitResult", "StakeTooLow"): _stake_too_low,
    ("commitResult", "BadSignature"): _claim_unknown_signer,
    # the coordinator, as verifier, giving a sampled job's re-run more time
    ("extendWindow", "WrongState"): _wrong_state,
    ("extendWindow", "WindowClosed"): lambda f, a: Conflict(
        f"extendWindow: the job's challenge window closed at {when(int(a[0]))}: too late to "
        "extend it"
    ),
    ("extendWindow", "AlreadyExtended"): lambda f, a: Conflict(
        "extendWindow: this job's challenge window was already extended (once per job)"
    ),
    ("extendWindow", "ExtensionTooLong"): _extension_too_long,
    ("extendWindow", "ZeroAmount"): lambda f, a: InvalidRequest(
        "extendWindow: an extension adds at least one second"
    ),
    ("extendWindow", "AccessControlUnauthorizedAccount"): _not_verifier,
    # the coordinator relaying a sampled job's order (openVerified): as a plain one
    ("openVerified", "InsufficientBalance"): _order_unfunded,
    ("openVerified", "BadSignature"): _order_unknown_signer,
    ("openVerified", "OrderExpired"): _order_expired,
    ("openVerified", "WrongState"): lambda f, a: Conflict("this job's escrow was already opened"),
    ("openVerified", "EnforcedPause"): lambda f, a: Conflict(_PAUSED),
    # the coordinator, as verifier, challenging a result its re-runs disagree with (no bond)
    ("verifierChallenge", "WrongState"): lambda f, a: _wrong_state("challenge", a),
    ("verifierChallenge", "WindowClosed"): lambda f, a: Conflict(
        f"challenge: the job's challenge window closed at {when(int(a[0]))}: too late to "
        "challenge it"
    ),
    ("verifierChallenge", "NotDeveloperOrVerifier"): lambda f, a: _not_verifier("challenge", a),
    # the coordinator, as verifier, paying a re-runner from the verification pool
    ("payRerun", "WrongState"): _wrong_state,
    ("payRerun", "InsufficientPool"): _pool_short,
    ("payRerun", "AlreadyPaid"): lambda f, a: Conflict(
        f"payRerun: {a[1]} was already paid for its re-run of this job (once per job)"
    ),
    ("payRerun", "BadSignature"): _rerun_claim_unknown_signer,
    ("payRerun", "RunnerIsProvider"): lambda f, a: InvalidRequest(
        f"payRerun: {a[1]} is the job's own provider: it is paid by the job, not for a re-run"
    ),
    ("payRerun", "AmountOverMax"): lambda f, a: InvalidRequest(
        f"payRerun: the re-run claims {from_micros(int(a[0]))}, over the job's maximum "
        f"payment of {from_micros(int(a[1]))}"
    ),
    ("payRerun", "AccessControlUnauthorizedAccount"): _not_verifier,
    # a user's own wallet, whatever it called
    (None, "InsufficientBalance"): _short,
    (None, "UnknownAccount"): lambda f, a: InvalidRequest(
        f"{f}: this wallet has no account in the market yet"
    ),
    (None, "ZeroAmount"): lambda f, a: InvalidRequest(
        f"{f}: nothing to withdraw (or an amount of zero)"
    ),
    (None, "UnstakeNotReady"): _unstake_not_ready,
    (None, "WindowClosed"): lambda f, a: InvalidRequest(
        "the challenge window of this job has closed"
    ),
    (None, "WrongState"): _wrong_state,
    (None, "NotDeveloperOrVerifier"): lambda f, a: InvalidRequest(
        "only the job's developer (or a verifier) may challenge it"
    ),
}
"""Each revert by (function, error name); ``None`` as the function: any wallet call."""


def refusal(function: str, exc: ContractReverted, *, wallet: bool = False) -> Exception:
    """What the caller of ``function`` hears for the contract's revert ``exc``. ``wallet``: a
    user's own call, which also takes the generic entries and never surfaces a raw revert."""
    args = [int(str(a)) if str(a).isdigit() else a for a in exc.args_]
    make = REFUSALS.get((function, exc.error))
    if make is None and wallet:
        make = REFUSALS.get((None, exc.error))
    if make is not None:
        try:
            return make(function, args)
        except (ValueError, IndexError, TypeError):
            pass  # a revert found on-chain carries no arguments: say it by name below
    if wallet:
        return InvalidRequest(
            f"{function} would revert: {exc.error or 'unknown error'}{tuple(args)}"
        )
    return exc
