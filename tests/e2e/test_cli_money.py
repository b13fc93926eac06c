"""Money through the CLI, as docs/quickstart.md tells it: an anvil devnet, a coordinator
settling on it, the provider daemon running Docker with a staked wallet, and a developer and
an operator typing commands. Balances are checked on the contract to the micro-unit."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path

import pytest

from gpumarket.protocol import stake_to_lock
from gpumarket.provider.daemon import ProviderDaemon
from gpumarket.settlement.deploy import DEFAULT_TERMS
from tests.e2e.money import USD, Session, staked_provider, start_provider
from tests.integration.provider.conftest import BUSYBOX

pytestmark = pytest.mark.integration


def test_money_through_the_cli(session: Session) -> None:
    s = session
    daemon, thread, config = start_provider(s)
    try:
        s.developer()  # the developer quickstart
        spec = s.tmp / "job.yaml"
        spec.write_text(
            f"image: {BUSYBOX}\nmax_price_per_hour: '36'\nmax_duration_seconds: 100\n"
            "resources: {cpu: 1, memory: 128MB}\n"
        )

        refused = s.cli(  # a job no provider here can take (64 CPUs): it stays queued
            "dev", "job", "submit", str(spec), "--command", "true", "--cpu", "64", check=False
        )
        assert refused.returncode == 1 and "Traceback" not in refused.stderr
        assert "never deposited" in refused.stderr
        waiting = json.loads(s.cli("dev", "job", "list", "--json").stdout)["items"][0]
        assert waiting["state"] == "SUBMITTED"

        s.cli("dev", "wallet", "deposit", "20")
        assert s.balance("dev")["deposit"] == "20.000000"
        assert "QUEUED" in s.cli("dev", "job", "pay", waiting["id"]).stdout
        assert s.balance("dev")["deposit"] == "19.000000"  # 36/h x 100 s in escrow

        run = s.cli(
            "dev",
            "job",
            "submit",
            str(spec),
            "--command",
            "sh -c 'echo paid work; sleep 1'",
            "--follow",
        )
        assert "paid work" in run.stdout and "signing an order for at most 1.000000" in run.stderr
        job_id = run.stdout.split()[1]
        committed = s.wait(job_id, "COMMITTED")
        assert [c["step"] for c in committed["chain"]] == ["open", "commit"]
        cost = Decimal(committed["cost"])
        assert 0 < cost <= 1

        # the quickstart's way past the window on a devnet
        moved = s.cli("ops", "chain", "travel", "3601", "--rpc-url", s.net.rpc_url).stdout
        assert moved.startswith("moved the chain 3601 s ahead")
        settled = s.wait(job_id, "SETTLED")
        receipt = {k: Decimal(v) for k, v in settled["receipt"].items()}
        micros = int(cost * USD)
        fee = micros * 250 // 10_000
        assert receipt["paid"] == Decimal(micros - fee) / USD
        assert receipt["fee"] == Decimal(fee) / USD
        assert receipt["burned"] == Decimal(fee * 2000 // 10_000) / USD
        assert receipt["refund"] == 1 - cost
        shown = s.cli("dev", "job", "show", job_id).stdout
        assert "on-chain finalize" in shown and "paid to provider" in shown
        # the first job (paid, waiting for a provider) still holds 1.0 in escrow
        assert Decimal(s.balance("dev")["deposit"]) == 19 - cost

        prov = ["--path", str(s.tmp / "provider-wallet.json")]
        assert Decimal(s.balance("prov", *prov)["earnings"]) == Decimal(micros - fee) / USD
        shown = s.cli("prov", "provider", "earnings", "--config", str(config), "--json").stdout
        earned = json.loads(shown)
        assert Decimal(earned["earned"]) == Decimal(earned["on_chain"]["earnings"])
        assert Decimal(earned["earned"]) == Decimal(micros - fee) / USD
        withdrawn = s.cli("prov", "provider", "withdraw", "--config", str(config), "--json").stdout
        assert Decimal(json.loads(withdrawn)["earnings"]) == Decimal(micros - fee) / USD
        assert json.loads(withdrawn)["earnings_tx_hash"].startswith("0x")
        assert Decimal(s.balance("prov", *prov)["wallet"]) == 350 + Decimal(micros - fee) / USD

        # a challenge the operator upholds: the provider's locked stake is slashed
        challenged = s.cli(
            "dev", "job", "submit", str(spec), "--command", "true", "--follow"
        ).stdout.split()[1]
        claimed = int(Decimal(s.wait(challenged, "COMMITTED")["cost"]) * USD)
        out = s.cli("dev", "job", "challenge", challenged, "--reason", "wrong numbers").stdout
        assert "DISPUTED" in out
        disputes = s.cli("ops", "admin", "disputes").stdout
        assert challenged in disputes and "wrong numbers" in disputes  # the operator sees why
        ruling = s.cli("ops", "admin", "resolve", challenged, "--provider-at-fault", "--json")
        assert json.loads(ruling.stdout)["state"] == "REFUNDED"
        # what its result locked: max(min_stake, stake_multiple x amount), the floor here
        slashed = stake_to_lock(
            claimed, DEFAULT_TERMS["min_stake"], DEFAULT_TERMS["stake_multiple"]
        )
        assert Decimal(s.balance("prov", *prov)["stake"]) == 150 - Decimal(slashed) / USD

        # the operator: fee for new jobs, pause and resume
        assert "fee 300 bps" in s.cli("ops", "admin", "fee", "300").stdout
        too_high = s.cli("ops", "admin", "fee", "5000", check=False)
        assert too_high.returncode == 1 and "fee_bps" in too_high.stderr
        paused_now = json.loads(s.cli("ops", "admin", "pause", "--json").stdout)
        assert paused_now["paused"] is True and paused_now["tx_hash"].startswith("0x")
        paused = s.cli("dev", "job", "submit", str(spec), "--command", "true", check=False)
        assert paused.returncode == 1 and "paused" in paused.stderr
        assert "Traceback" not in paused.stderr
        assert "market running" in s.cli("ops", "admin", "pause", "--resume").stdout

        # cancelling the paid job that never ran refunds its whole escrow on-chain
        before = Decimal(s.balance("dev")["deposit"])
        cancelled = s.cli("dev", "job", "cancel", waiting["id"], "--json").stdout
        assert json.loads(cancelled)["state"] == "CANCELLED"
        # the refund is on-chain once mined; the coordinator records the step once it has read
        # the receipt, a moment later: wait on the coordinator's record, then check the chain
        deadline = time.monotonic() + 30
        while [c["step"] for c in s.job(waiting["id"])["chain"]] != ["open", "cancel"]:
            assert time.monotonic() < deadline, "the cancelled job's refund was not recorded"
            time.sleep(0.3)
        assert Decimal(s.balance("dev")["deposit"]) == before + 1
    finally:
        daemon.stop()
        thread.join(30)


def test_cancelling_a_running_job_pays_its_seconds_and_refunds_the_rest(
    session: Session,
) -> None:
    s = session
    daemon, thread, _config = start_provider(s)
    try:
        s.developer()
        s.cli("dev", "wallet", "deposit", "20")
        job_id = s.submit_with_flags("sleep 60")
        s.wait(job_id, "RUNNING")
        time.sleep(2)
        assert "CANCELLED" in s.cli("dev", "job", "cancel", job_id).stdout
        deadline = time.monotonic() + 60
        while [c["step"] for c in s.job(job_id)["chain"]] != ["open", "commit"]:
            assert time.monotonic() < deadline, "the cancelled run's claim was not committed"
            time.sleep(0.3)
        s.net.time_travel(3601)
        while (job := s.job(job_id))["receipt"] is None:
            assert time.monotonic() < deadline + 30, "the cancelled run did not settle"
            time.sleep(0.3)
        paid, fee, refund = (Decimal(job["receipt"][k]) for k in ("paid", "fee", "refund"))
        assert job["state"] == "CANCELLED" and paid > 0
        assert paid + fee + refund == 1  # the whole escrow: seconds run, fee, and the rest back
        assert Decimal(s.balance("dev")["deposit"]) == 20 - paid - fee
        # the operator's figures count the payment although the job ended CANCELLED
        stats = json.loads(s.cli("ops", "admin", "stats", "--json").stdout)
        assert stats["revenue_micros"] == int((paid + fee) * USD)
        assert stats["fees_micros"] == int(fee * USD) and stats["pending_micros"] == 0
    finally:
        daemon.stop()
        thread.join(30)


def test_a_killed_provider_is_replaced_and_only_the_replacement_is_paid(session: Session) -> None:
    s = session
    _, config = staked_provider(s, "first")
    log = (s.tmp / "first.log").open("wb")
    first = subprocess.Popen(
        [sys.executable, "-m", "gpumarket.cli", "provider", "run", "--config", str(config)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "GPUMARKET_WALLET_PASSWORD": "pw"},
    )
    second: tuple[ProviderDaemon, threading.Thread, Path] | None = None
    try:
        s.developer()
        s.cli("dev", "wallet", "deposit", "20")
        job_id = s.submit_with_flags("sleep 3")
        first_id = s.wait(job_id, "RUNNING")["provider_id"]
        first.send_signal(signal.SIGKILL)  # mid-job, and it never comes back
        first.wait(10)

        second = start_provider(s, "second")
        committed = s.wait(job_id, "COMMITTED", timeout=90)
        assert committed["provider_id"] != first_id and committed["attempts"] == 2
        s.net.time_travel(3601)
        settled = s.wait(job_id, "SETTLED")
        paid = Decimal(settled["receipt"]["paid"])
        first_wallet = ["--path", str(s.tmp / "first-wallet.json")]
        second_wallet = ["--path", str(s.tmp / "second-wallet.json")]
        assert Decimal(s.balance("prov", *second_wallet)["earnings"]) == paid > 0
        assert s.balance("prov", *first_wallet)["earnings"] == "0.000000"
        fee = Decimal(settled["receipt"]["fee"])
        assert Decimal(s.balance("dev")["deposit"]) == 20 - paid - fee
    finally:
        if first.poll() is None:
            first.kill()
        if second is not None:
            second[0].stop()
            second[1].join(30)


def _daemon_process(s: Session, config: Path, log_name: str) -> subprocess.Popen[bytes]:
    """``gpumarket provider run`` as its own process (so it can be SIGKILLed)."""
    log = (s.tmp / log_name).open("wb")
    return subprocess.Popen(
        [sys.executable, "-m", "gpumarket.cli", "provider", "run", "--config", str(config)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "GPUMARKET_WALLET_PASSWORD": "pw"},
    )


@pytest.mark.lease_seconds(60)
def test_a_provider_killed_mid_job_and_restarted_is_paid_for_it(session: Session) -> None:
    """A daemon SIGKILLed while its job runs comes back, re-attaches to the container and
    claims on-chain with the job's chain id (it was refused: "no on-chain id to claim
    against", and the finished work was thrown away)."""
    s = session
    _, config = staked_provider(s, "restarted")
    daemon = _daemon_process(s, config, "restarted-1.log")
    try:
        s.developer()
        s.cli("dev", "wallet", "deposit", "20")
        job_id = s.submit_with_flags("sh -c 'sleep 4; echo done'")
        provider_id = s.wait(job_id, "RUNNING")["provider_id"]
        daemon.send_signal(signal.SIGKILL)  # mid-job
        daemon.wait(10)
        daemon = _daemon_process(s, config, "restarted-2.log")
        committed = s.wait(job_id, "COMMITTED", timeout=90)
        assert committed["provider_id"] == provider_id and committed["attempts"] == 1
        assert "done" in s.cli("dev", "job", "logs", job_id).stdout
        s.net.time_travel(3601)
        settled = s.wait(job_id, "SETTLED")
        paid = Decimal(settled["receipt"]["paid"])
        wallet = ["--path", str(s.tmp / "restarted-wallet.json")]
        assert Decimal(s.balance("prov", *wallet)["earnings"]) == paid > 0
    finally:
        daemon.kill()
        daemon.wait(10)


def test_a_rejected_challenge_and_a_coordinator_killed_before_finalize(session: Session) -> None:
    """The other ruling (the provider was right: paid, and the bond is its), and the
    coordinator SIGKILLed between commit and finalize: after restart the job settles once."""
    s = session
    daemon, thread, config = start_provider(s)
    try:
        s.developer()
        s.cli("dev", "wallet", "deposit", "20")
        spec = s.tmp / "job.yaml"
        spec.write_text(
            f"image: {BUSYBOX}\nmax_price_per_hour: '36'\nmax_duration_seconds: 100\n"
            "resources: {cpu: 1, memory: 128MB}\n"
        )
        prov = ["--path", str(s.tmp / "provider-wallet.json")]

        challenged = s.cli(
            "dev", "job", "submit", str(spec), "--command", "sh -c 'sleep 1'", "--follow"
        ).stdout.split()[1]
        cost = Decimal(s.wait(challenged, "COMMITTED")["cost"])
        wallet_before = Decimal(s.balance("dev")["wallet"])
        assert "DISPUTED" in s.cli("dev", "job", "challenge", challenged, "--reason", "hm").stdout
        assert Decimal(s.balance("dev")["wallet"]) == wallet_before - 10  # the bond
        ruling = s.cli("ops", "admin", "resolve", challenged, "--provider-right").stdout
        assert f"{challenged}: SETTLED" in ruling
        settled = s.job(challenged)
        assert [c["step"] for c in settled["chain"]] == ["open", "commit", "challenge", "resolve"]
        micros = int(cost * USD)
        fee = micros * 250 // 10_000
        assert Decimal(settled["receipt"]["paid"]) == Decimal(micros - fee) / USD
        earned = Decimal(s.balance("prov", *prov)["earnings"])
        assert earned == Decimal(micros - fee) / USD + 10  # its pay and the developer's bond
        assert Decimal(s.balance("dev")["deposit"]) == 20 - cost

        job_id = s.cli(
            "dev", "job", "submit", str(spec), "--command", "sh -c 'sleep 1'", "--follow"
        ).stdout.split()[1]
        cost = Decimal(s.wait(job_id, "COMMITTED")["cost"])
        s.kill_coordinator_and_restart(lambda: s.net.time_travel(3601))
        settled = s.wait(job_id, "SETTLED")
        assert [c["step"] for c in settled["chain"]] == ["open", "commit", "finalize"]
        micros2 = int(cost * USD)
        fee2 = micros2 * 250 // 10_000
        assert Decimal(settled["receipt"]["paid"]) == Decimal(micros2 - fee2) / USD
        assert (
            Decimal(s.balance("prov", *prov)["earnings"]) == earned + Decimal(micros2 - fee2) / USD
        )  # paid once
        shown = s.cli("prov", "provider", "earnings", "--config", str(config), "--json").stdout
        assert Decimal(json.loads(shown)["on_chain"]["earnings"]) == Decimal(
            s.balance("prov", *prov)["earnings"]
        )
    finally:
        daemon.stop()
        thread.join(30)
