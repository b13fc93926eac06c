"""The contract's reverts of ``extendWindow`` and a scaled ``StakeTooLow`` as people read them."""

from __future__ import annotations

import pytest

from gpumarket.errors import (
    ConfigurationError,
    Conflict,
    ContractReverted,
    InvalidRequest,
    PaymentRequired,
)
from gpumarket.settlement.refusals import refusal


def reverted(error: str, *args: object) -> ContractReverted:
    return ContractReverted(error, tuple(args), raw="0x")


@pytest.mark.parametrize(
    ("error", "args", "kind", "says"),
    [
        ("WrongState", (b"\x01" * 32, 3), InvalidRequest, "the job is Disputed on the chain"),
        ("WindowClosed", (1_700_000_000, 1_700_000_001), Conflict, "too late to extend"),
        ("AlreadyExtended", (b"\x01" * 32,), Conflict, "already extended (once per job)"),
        ("ExtensionTooLong", (172_801, 172_800), InvalidRequest, "172801 s is more than"),
        ("ExtensionTooLong", (60, 0), InvalidRequest, "allow no extension"),
        ("ZeroAmount", (), InvalidRequest, "at least one second"),
        (
            "AccessControlUnauthorizedAccount",
            ("0x" + "ab" * 20, b"\x02" * 32),
            ConfigurationError,
            "grantRole(VERIFIER_ROLE",
        ),
    ],
)
def test_each_extend_window_revert_says_why(
    error: str, args: tuple[object, ...], kind: type[Exception], says: str
) -> None:
    found = refusal("extendWindow", reverted(error, *args))
    assert isinstance(found, kind)
    assert says in str(found)


def test_stake_too_low_names_the_scaled_need() -> None:
    found = refusal("commitResult", reverted("StakeTooLow", 100_000_000, 120_000_000))
    assert isinstance(found, PaymentRequired)
    assert "free stake is 100.000000, under the 120.000000 this result must lock" in str(found)
    assert "stake multiple times the amount" in str(found)
