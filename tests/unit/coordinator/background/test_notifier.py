"""The notifier: sticky wake-ups for the matcher and long-polls, fleeting ones for log
followers, and no key kept once nobody waits on it."""

from __future__ import annotations

import asyncio
import threading

from sqlalchemy.orm import Session, sessionmaker

from gpumarket.coordinator.background.notifier import Notifier, log_key, wake_followers_on_commit
from gpumarket.coordinator.db.engine import session_scope
from gpumarket.coordinator.services import lifecycle
from gpumarket.coordinator.settings import CoordinatorSettings
from gpumarket.protocol import JobState
from tests.unit.coordinator.conftest import RecordingSettlement, add_developer, submit


def test_a_notify_before_the_wait_is_remembered() -> None:
    async def scenario() -> bool:
        notifier = Notifier()
        notifier.bind(asyncio.get_running_loop())
        notifier.notify("matcher")
        return await notifier.wait("matcher", 5)

    assert asyncio.run(scenario())


def test_a_log_wake_up_reaches_followers_waiting_and_is_not_kept() -> None:
    async def scenario() -> tuple[list[bool], int, bool]:
        notifier = Notifier()
        notifier.bind(asyncio.get_running_loop())
        key = log_key("job_1")
        followers = [asyncio.create_task(notifier.wait(key, 5)) for _ in range(3)]
        await asyncio.sleep(0)
        # from a worker thread, as the log route's background task runs
        thread = threading.Thread(target=notifier.wake_waiting, args=(key,))
        thread.start()
        thread.join()
        woken = await asyncio.gather(*followers)
        kept = notifier.waiting()
        notifier.wake_waiting(key)  # nobody waits: nothing is remembered
        late = await notifier.wait(key, 0.05)
        return woken, kept, late

    woken, kept, late = asyncio.run(scenario())
    assert woken == [True, True, True]
    assert kept == 0
    assert late is False


class RecordingNotifier(Notifier):
    """Records fleeting wake-ups instead of needing an event loop."""

    def __init__(self) -> None:
        super().__init__()
        self.woken: list[str] = []

    def wake_waiting(self, key: str) -> None:
        self.woken.append(key)


def test_followers_are_woken_when_a_committed_transaction_moved_their_job(
    factory: sessionmaker[Session],
    svc_settings: CoordinatorSettings,
    ledger: RecordingSettlement,
) -> None:
    notifier = RecordingNotifier()
    wake_followers_on_commit(factory, notifier, lifecycle.CHANGED_JOBS)
    owner = add_developer(factory)
    job_id = submit(
        factory, owner, {"image": "busybox", "max_price_per_hour": "1"}, svc_settings, ledger
    )
    assert notifier.woken == [log_key(job_id)]  # SUBMITTED -> QUEUED
    notifier.woken.clear()
    with factory() as session:  # a transaction that moves the job but is rolled back
        job = lifecycle.load_job_for_update(session, job_id)
        lifecycle.transition(session, job, JobState.CANCELLED, "changed my mind")
        session.rollback()
        session.commit()
    assert notifier.woken == []
    with session_scope(factory) as session:
        job = lifecycle.load_job_for_update(session, job_id)
        lifecycle.cancel(session, job, "changed my mind", ledger, svc_settings)
    assert notifier.woken == [log_key(job_id)]
