"""Verification by re-execution on the real path: an anvil devnet, the coordinator settling on
it, three staked provider daemons running Docker, and the developer's CLI. One provider cheats
(a test double around the real daemon: it runs the container, then swaps its outputs before
packing them); the market's re-run catches it, the tie-break confirms, and the contract slashes
it by the exact scaled stake, refunds the developer to the unit and pays the honest re-runners
from the verification pool."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount

from gpumarket.keystore import create_wallet
from gpumarket.provider.config import load_config
from gpumarket.provider.daemon import ProviderDaemon
from gpumarket.provider.runner import JobRunner
from gpumarket.settlement.deploy import DEFAULT_TERMS
from tests.e2e.money import USD, Session
from tests.integration.provider.conftest import run_labels_toml

pytestmark = [
    pytest.mark.integration,
    pytest.mark.coordinator_env(
        {"GPUMARKET_SAMPLING_RATE_NEW": "1.0", "GPUMARKET_EXPLORE_SHARE": "0"}
    ),
]


class CheatingRunner(JobRunner):
    """The real runner, except that the job's outputs are replaced by a wrong answer before
    they are packed, hashed, uploaded and claimed: what a provider returning garbage does."""

    def _report(self, outcome: Any, shipper: Any) -> None:
        outputs = self.executor.job_dir(self.job_id) / "outputs"
        for path in outputs.iterdir():
            if path.is_file():
                path.write_text("41\n")
        super()._report(outcome, shipper)


class CheatingDaemon(ProviderDaemon):
    """The real daemon with :class:`CheatingRunner` (tests only: no such switch ships)."""

    runner_class = CheatingRunner


def _provider(
    s: Session, name: str, price: str, cheat: bool = False
) -> tuple[ProviderDaemon, threading.Thread, LocalAccount, Path]:
    wallet = s.tmp / f"{name}-wallet.json"
    account = create_wallet(wallet, "pw")
    config = s.tmp / f"{name}.toml"
    config.write_text(
        f'coordinator_url = "{s.coordinator.url}"\nwallet = "{wallet}"\n'
        f'work_dir = "{s.tmp / name / "work"}"\ncpu_price_per_hour = "{price}"\n'
        "stop_grace_seconds = 1\npoll_wait_seconds = 2\n"
        f"container_labels = {run_labels_toml()}\n"
    )
    s.fund(account.address, "500")
    s.cli("prov", "provider", "stake", "150", "--config", str(config))
    daemon = (CheatingDaemon if cheat else ProviderDaemon)(load_config(config), account)
    thread = threading.Thread(target=daemon.run, daemon=True)
    thread.start()
    return daemon, thread, account, config


@contextmanager
def _three_providers(s: Session) -> Iterator[tuple[LocalAccount, LocalAccount, LocalAccount]]:
    """A cheater (the cheapest, 30/h) and two honest providers (36/h, 40/h), staked and
    running, and a developer with 20 deposited; stops the daemons after."""
    started = [
        _provider(s, "cheater", "30", cheat=True),
        _provider(s, "honest1", "36"),
        _provider(s, "honest2", "40"),
    ]
    try:
        s.developer()
        s.cli("dev", "wallet", "deposit", "20")
        yield started[0][2], started[1][2], started[2][2]
    finally:
        for daemon, _thread, _, _ in started:
            daemon.stop()
        for _, thread, _, _ in started:
            thread.join(30)


def _wait(s: Session, job_id: str, check: Any, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while not check(job := s.job(job_id)):
        assert time.monotonic() < deadline, f"{job_id}: {job['state']} {job.get('verification')}"
        time.sleep(0.5)
    return job


def _wallet(s: Session, account: LocalAccount) -> dict[str, int]:
    ident = s.market.account_id(account.address)
    balances = s.market.balances(ident)
    return {"stake": balances.stake, "earnings": balances.earnings}


def _assert_outvoted(
    s: Session,
    done: dict[str, Any],
    runs: list[dict[str, Any]],
    accounts: tuple[LocalAccount, LocalAccount, LocalAccount],
    before: Decimal,
    pool_before: int,
) -> None:
    """The money after the cheater's job lost to the other runs, to the unit."""
    cheater, honest1, honest2 = accounts
    # three independent runs: three providers
    assert len({done["provider_id"], *(r["provider_id"] for r in runs)}) == 3
    assert all(r["verifies_job_id"] == done["id"] for r in runs)
    # the developer is refunded to the unit: the whole escrow back in the deposit
    assert Decimal(s.balance("dev")["deposit"]) == before
    # the cheater is slashed by the stake its result locked: max(floor, multiple x amount)
    amount = s.market.job(bytes.fromhex(done["chain_job_id"][2:])).amount
    slash = max(DEFAULT_TERMS["min_stake"], DEFAULT_TERMS["stake_multiple"] * amount)
    assert _wallet(s, cheater)["stake"] == 150 * USD - slash
    # the honest runners are paid their runs from the pool, which got the slash share
    earned = _wallet(s, honest1)["earnings"] + _wallet(s, honest2)["earnings"]
    assert earned == sum(int(Decimal(r["cost"]) * USD) for r in runs) > 0
    share = slash * DEFAULT_TERMS["slash_share_bps"] // 10_000
    assert s.market.verification_pool() == pool_before + share - earned


def test_a_cheater_on_a_sampled_job_is_caught_slashed_and_the_developer_refunded(
    session: Session,
) -> None:
    s = session
    with _three_providers(s) as (cheater, honest1, honest2):
        before = Decimal(s.balance("dev")["deposit"])
        pool_before = s.market.verification_pool()
        job_id = s.submit_with_flags(
            "sh -c 'echo 42 > /outputs/answer.txt'",
            "--verification",
            "sampled",
            "--deterministic",
            max_price="60",
        )
        done = _wait(s, job_id, lambda j: j["state"] == "REFUNDED", timeout=180)
        assert done["verification"] == "provider_wrong"
        rerun_id, tiebreak_id = done["verification_runs"]
        assert [c["step"] for c in done["chain"]][:2] == ["open", "commit"]
        assert {"extend", "challenge", "resolve"} <= {c["step"] for c in done["chain"]}
        runs = [_wait(s, r, lambda j: j["state"] == "SETTLED") for r in (rerun_id, tiebreak_id)]
        _assert_outvoted(s, done, runs, (cheater, honest1, honest2), before, pool_before)
        # its public record shows it, and it is no longer chosen first
        profile = json.loads(s.cli("dev", "provider", "show", done["provider_id"], "--json").stdout)
        assert profile["reruns_failed"] == 1 and profile["slashes"] == 1
        events = s.cli("dev", "job", "events", job_id).stdout
        assert "verify disputed" in events and "verify provider_wrong" in events
        assert "money refunded" in events
        second = s.submit_with_flags("true")
        assigned = _wait(s, second, lambda j: j["provider_id"] is not None)
        assert assigned["provider_id"] != done["provider_id"]


def _submit_redundant(s: Session, command: str) -> str:
    """The developer submits a deterministic redundant job over three providers (60/h, at
    most 100 s per run); its id."""
    return s.submit_with_flags(
        command,
        "--verification",
        "redundant",
        "--redundancy",
        "3",
        "--deterministic",
        max_price="60",
    )


def test_a_redundant_job_over_three_providers_outvotes_a_cheater_and_a_random_job_has_no_majority(
    session: Session,
) -> None:
    s = session
    with _three_providers(s) as (cheater, honest1, honest2):
        before = Decimal(s.balance("dev")["deposit"])
        pool_before = s.market.verification_pool()
        # 1. one of three cheats: the job's own run (the cheapest provider's) is outvoted
        job_id = _submit_redundant(s, "sh -c 'echo 42 > /outputs/answer.txt'")
        done = _wait(s, job_id, lambda j: j["state"] == "REFUNDED", timeout=180)
        assert done["verification"] == "provider_wrong"
        replicas = [
            _wait(s, r, lambda j: j["state"] == "SETTLED") for r in done["verification_runs"]
        ]
        assert len(replicas) == 2
        assert {"open", "commit", "challenge", "resolve"} <= {c["step"] for c in done["chain"]}
        _assert_outvoted(s, done, replicas, (cheater, honest1, honest2), before, pool_before)

        # 2. a job that writes random bytes: every run differs, nobody is slashed
        stakes = [_wallet(s, a)["stake"] for a in (cheater, honest1, honest2)]
        random_id = _submit_redundant(
            s, "sh -c 'head -c 32 /dev/urandom | od -x > /outputs/answer.txt'"
        )
        shown = _wait(s, random_id, lambda j: j["verification"] == "no_majority", timeout=180)
        for run_id in shown["verification_runs"]:
            _wait(s, run_id, lambda j: j["state"] == "SETTLED")
        assert [_wallet(s, a)["stake"] for a in (cheater, honest1, honest2)] == stakes
        assert "challenge" not in {c["step"] for c in s.job(random_id)["chain"]}
        events = s.cli("dev", "job", "events", random_id).stdout
        assert "verify no_majority" in events and "not deterministic" in events
