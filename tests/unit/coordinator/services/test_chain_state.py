"""The settlement state machine: the ALLOWED table is complete, terminal states are final, and
``advance`` is idempotent, refuses what the table does not list, and records every move (kind
``chain``) with the transaction that made it."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from gpumarket.coordinator.db.engine import session_scope
from gpumarket.coordinator.db.models import ChainTx, JobEventRow
from gpumarket.coordinator.services import chain_state, lifecycle
from gpumarket.coordinator.services.settlement import StepReceipt
from gpumarket.coordinator.settings import CoordinatorSettings
from gpumarket.errors import InvalidTransition
from gpumarket.protocol import ChainState
from tests.helpers import cpu_spec
from tests.unit.coordinator.conftest import RecordingSettlement, add_developer, submit

C = ChainState
TERMINAL = {C.SETTLED, C.REFUNDED, C.CANCELLED}
OPEN_TX = StepReceipt("0x" + "0a" * 32, 101, 92_000)


@pytest.fixture
def job_id(
    factory: sessionmaker[Session],
    svc_settings: CoordinatorSettings,
    ledger: RecordingSettlement,
) -> str:
    """A job whose money the chain does not track yet (chain_state None)."""
    return submit(factory, add_developer(factory), cpu_spec(), svc_settings, ledger)


def chain_rows(factory: sessionmaker[Session], job_id: str) -> list[tuple[str | None, str]]:
    with session_scope(factory) as session:
        rows = session.execute(
            select(JobEventRow.from_state, JobEventRow.to_state)
            .where(JobEventRow.job_id == job_id, JobEventRow.kind == "chain")
            .order_by(JobEventRow.id)
        ).all()
        return [(a, b) for a, b in rows]


def tx_count(factory: sessionmaker[Session], job_id: str) -> int:
    with session_scope(factory) as session:
        return int(session.scalar(select(func.count()).where(ChainTx.job_id == job_id)) or 0)


def test_every_state_has_an_entry_and_only_terminal_states_allow_nothing() -> None:
    assert set(chain_state.ALLOWED) == {None, *ChainState}
    for state, targets in chain_state.ALLOWED.items():
        assert (not targets) == (state in TERMINAL), state
        assert None not in targets  # money is never "untracked" again


def test_every_state_is_reachable_from_a_new_job_and_every_path_ends_terminal() -> None:
    """No state in the table is dead code, and no non-terminal state is a dead end."""
    seen: set[ChainState] = set()
    todo: list[ChainState | None] = [None]
    while todo:
        for target in chain_state.ALLOWED[todo.pop()]:
            if target not in seen:
                seen.add(target)
                todo.append(target)
    assert seen == set(ChainState)


def test_advance_records_the_move_with_its_transaction_block_and_gas(
    factory: sessionmaker[Session], job_id: str
) -> None:
    with session_scope(factory) as session:
        job = lifecycle.load_job_for_update(session, job_id)
        assert chain_state.current(job) is None
        assert chain_state.advance(session, job, C.AWAITING_ORDER, "waiting for the order")
        assert chain_state.advance(session, job, C.OPEN, "escrow opened", OPEN_TX)
        assert chain_state.current(job) is C.OPEN
    with session_scope(factory) as session:
        rows = session.scalars(
            select(JobEventRow)
            .where(JobEventRow.job_id == job_id, JobEventRow.kind == "chain")
            .order_by(JobEventRow.id)
        ).all()
        assert [(r.from_state, r.to_state, r.reason) for r in rows] == [
            (None, "awaiting_order", "waiting for the order"),
            ("awaiting_order", "open", "escrow opened"),
        ]
        assert (rows[0].tx_hash, rows[0].block, rows[0].gas_used) == (None, None, None)
        assert (rows[1].tx_hash, rows[1].block, rows[1].gas_used) == (OPEN_TX.tx_hash, 101, 92_000)
        steps = session.scalars(select(ChainTx).where(ChainTx.job_id == job_id)).all()
        assert [(s.step, s.tx_hash, s.block, s.gas_used) for s in steps] == [
            ("open", OPEN_TX.tx_hash, 101, 92_000)
        ]


def test_advance_to_the_current_state_is_a_no_op(
    factory: sessionmaker[Session], job_id: str
) -> None:
    with session_scope(factory) as session:
        job = lifecycle.load_job_for_update(session, job_id)
        chain_state.advance(session, job, C.AWAITING_ORDER, "waiting")
        chain_state.advance(session, job, C.OPEN, "escrow opened", OPEN_TX)
    with session_scope(factory) as session:
        job = lifecycle.load_job_for_update(session, job_id)
        again = chain_state.advance(session, job, C.OPEN, "seen again by the follower", OPEN_TX)
        assert again is False
    assert chain_rows(factory, job_id) == [(None, "awaiting_order"), ("awaiting_order", "open")]
    assert tx_count(factory, job_id) == 1


@pytest.mark.parametrize(
    ("path", "refused"),
    [
        ([], C.OPEN),  # an untracked job has no order to open
        ([C.AWAITING_ORDER], C.COMMITTED),  # no claim without an escrow
        ([C.AWAITING_ORDER, C.OPEN], C.SETTLED),  # no payout without a claim
        ([C.AWAITING_ORDER, C.VOID], C.OPEN),  # a void order is only ever returned
        ([C.AWAITING_ORDER, C.OPEN, C.CANCELLING, C.CANCELLED], C.OPEN),  # terminal
    ],
)
def test_advance_refuses_a_move_the_table_does_not_list(
    factory: sessionmaker[Session],
    job_id: str,
    path: list[ChainState],
    refused: ChainState,
) -> None:
    with session_scope(factory) as session:
        job = lifecycle.load_job_for_update(session, job_id)
        for step in path:
            chain_state.advance(session, job, step, "setup")
    with session_scope(factory) as session:
        job = lifecycle.load_job_for_update(session, job_id)
        here = path[-1].value if path else "untracked"
        with pytest.raises(
            InvalidTransition, match=f"money is {here}; it cannot become {refused.value}"
        ):
            chain_state.advance(session, job, refused, "not allowed", OPEN_TX)
        assert chain_state.current(job) is (path[-1] if path else None)
    assert len(chain_rows(factory, job_id)) == len(path)
    assert tx_count(factory, job_id) == 0


def test_a_transaction_is_listed_once_per_step_on_the_receipt(
    factory: sessionmaker[Session], job_id: str
) -> None:
    """The same transaction recorded twice for a step (the request and the follower) is one
    line on the job's receipt; a receipt with no transaction adds none."""
    with session_scope(factory) as session:
        job = lifecycle.load_job_for_update(session, job_id)
        chain_state.record_step(session, job, "challenge", OPEN_TX)
        session.flush()
        session.refresh(job, ["chain_txs"])
        chain_state.record_step(session, job, "challenge", OPEN_TX)
        chain_state.record_step(session, job, "challenge", StepReceipt())
    assert tx_count(factory, job_id) == 1
