"""The assignment a restarted daemon finishes its job with: saved as it arrived, or rebuilt
from the coordinator's view, and on an on-chain market always with what a claim needs."""

from __future__ import annotations

from pathlib import Path

from eth_account import Account

from gpumarket.protocol.pricing import max_payment_micros
from gpumarket.provider.assignments import (
    ASSIGNMENT_FILE,
    load_assignment,
    recovered_assignment,
    save_assignment,
)
from gpumarket.provider.claims import ClaimSigner
from tests.unit.provider.doubles import CHAIN_JOB_ID, JOB_ID, assignment, job_view
from tests.unit.provider.test_claims import CHAIN


def test_the_saved_assignment_is_the_one_that_arrived(tmp_path: Path) -> None:
    sent = assignment(max_payment_micros=1_234_567)
    save_assignment(tmp_path / JOB_ID, sent)
    assert load_assignment(tmp_path / JOB_ID, JOB_ID) == sent
    assert recovered_assignment(job_view(attempts=1), sent) == sent


def test_a_missing_unreadable_or_foreign_copy_is_none(tmp_path: Path) -> None:
    assert load_assignment(tmp_path / JOB_ID, JOB_ID) is None
    save_assignment(tmp_path / JOB_ID, assignment(job_id="job_ffffffffffffffff"))
    assert load_assignment(tmp_path / JOB_ID, JOB_ID) is None
    (tmp_path / JOB_ID / ASSIGNMENT_FILE).write_text("{half a fi")
    assert load_assignment(tmp_path / JOB_ID, JOB_ID) is None


def test_without_a_saved_copy_the_rebuilt_assignment_can_still_be_claimed() -> None:
    view = job_view(attempts=2)
    rebuilt = recovered_assignment(view, None)
    assert rebuilt.chain_job_id == CHAIN_JOB_ID
    assert rebuilt.max_payment_micros == max_payment_micros(view.spec) == 2_000_000
    assert (rebuilt.attempt, rebuilt.price_per_hour) == (2, view.price_per_hour)
    claim = ClaimSigner(Account.create(), CHAIN).claim(rebuilt, 0, None, 100)
    assert claim.amount_micros == 1_800_000 * 100 // 3600


def test_a_copy_from_an_earlier_attempt_lends_only_its_chain_terms() -> None:
    earlier = assignment(attempt=1, max_payment_micros=1_999_999)
    rebuilt = recovered_assignment(job_view(attempts=2, chain_job_id=None), earlier)
    assert rebuilt.attempt == 2
    assert (rebuilt.chain_job_id, rebuilt.max_payment_micros) == (CHAIN_JOB_ID, 1_999_999)
