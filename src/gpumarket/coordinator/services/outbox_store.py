"""The settlement outbox kept in the coordinator's own database.

Every replica of the coordinator shares this table, so a transaction recorded by one replica
that died before sending it is found and sent by another (:meth:`TransactionSender.resume`),
and a key recorded by one replica is answered, never sent again, by the others. A nonce is
taken under the row lock of the sender's ``outbox_senders`` row (on SQLite, under the single
writer lock every write transaction takes at BEGIN), in the same transaction that writes the
signed entry: two replicas never sign the same nonce and none is skipped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from gpumarket.coordinator.db.base import utcnow
from gpumarket.coordinator.db.engine import session_scope
from gpumarket.coordinator.db.models import OutboxRow, OutboxSender
from gpumarket.settlement.outbox import Entry, Signed

log = logging.getLogger(__name__)


def _entry(row: OutboxRow) -> Entry:
    return Entry(
        key=row.key,
        sender=row.sender,
        nonce=row.nonce,
        target=row.target,
        data=row.data,
        raw=row.raw,
        hash=row.hash,
        status=row.status,
        gas_used=row.gas_used,
        block=row.block,
        error=row.error,
    )


class DatabaseOutboxStore:
    """:class:`gpumarket.settlement.outbox.OutboxStore` on the coordinator's database."""

    def __init__(self, factory: sessionmaker[Session]) -> None:
        self.factory = factory

    def get(self, key: str) -> Entry | None:
        """The entry under ``key``, if any."""
        with session_scope(self.factory) as session:
            row = session.get(OutboxRow, key)
            return _entry(row) if row else None

    def _lock_sender(self, session: Session, sender: str) -> OutboxSender:
        row = session.get(OutboxSender, sender, with_for_update=True, populate_existing=True)
        if row is not None:
            return row
        try:
            with session.begin_nested():  # two replicas may create it at once: one wins
                session.add(OutboxSender(address=sender, next_nonce=0))
        except IntegrityError:
            pass
        row = session.get(OutboxSender, sender, with_for_update=True, populate_existing=True)
        assert row is not None
        return row

    def reserve(
        self,
        key: str,
        sender: str,
        chain_nonce: int,
        target: str,
        data: str,
        sign: Callable[[int], Signed],
    ) -> Entry:
        """Take ``sender``'s next nonce and write the signed entry, in one transaction."""
        with session_scope(self.factory) as session:
            counter = self._lock_sender(session, sender)
            known = session.get(OutboxRow, key, populate_existing=True)
            if known is not None:  # another request (or replica) recorded it first
                return _entry(known)
            nonce = max(chain_nonce, counter.next_nonce)
            signed = sign(nonce)
            row = OutboxRow(
                key=key,
                sender=sender,
                nonce=nonce,
                target=target,
                data=data,
                raw=signed.raw,
                hash=signed.hash,
                status="sent",
                created_at=utcnow(),
            )
            session.add(row)
            counter.next_nonce = nonce + 1
            session.flush()
            return _entry(row)

    def finish(self, key: str, status: str, gas_used: int, block: int, error: str | None) -> None:
        """Record the receipt of ``key``'s transaction."""
        with session_scope(self.factory) as session:
            session.execute(
                update(OutboxRow)
                .where(OutboxRow.key == key)
                .values(status=status, gas_used=gas_used, block=block, error=error)
                .execution_options(synchronize_session=False)
            )

    def unconfirmed(self, sender: str) -> list[str]:
        """Keys of ``sender``'s entries without a receipt, in nonce order."""
        with session_scope(self.factory) as session:
            return list(
                session.scalars(
                    select(OutboxRow.key)
                    .where(OutboxRow.status == "sent", OutboxRow.sender == sender)
                    .order_by(OutboxRow.nonce)
                )
            )

    def pending(self) -> int:
        """How many entries still await a receipt."""
        with session_scope(self.factory) as session:
            return int(
                session.scalar(
                    select(func.count()).select_from(OutboxRow).where(OutboxRow.status == "sent")
                )
                or 0
            )

    def adopt(self, entries: list[Entry]) -> int:
        """Copy entries from an older outbox (the per-process SQLite file of earlier versions)
        that this one does not have, keeping their nonces; returns how many were new."""
        added = 0
        with session_scope(self.factory) as session:
            for entry in entries:
                if session.get(OutboxRow, entry.key) is not None:
                    continue
                try:
                    with session.begin_nested():  # two old files may hold one nonce: skip it
                        self._adopt_one(session, entry)
                except IntegrityError:
                    log.warning(
                        "outbox entry %s (nonce %d) conflicts with one already adopted; "
                        "skipped (its transaction is found by the event follower if mined)",
                        entry.key,
                        entry.nonce,
                    )
                    continue
                added += 1
        return added

    def _adopt_one(self, session: Session, entry: Entry) -> None:
        """Copy one old entry and move its sender's next nonce past it."""
        session.add(
            OutboxRow(
                key=entry.key,
                sender=entry.sender,
                nonce=entry.nonce,
                target=entry.target,
                data=entry.data,
                raw=entry.raw,
                hash=entry.hash,
                status=entry.status,
                gas_used=entry.gas_used,
                block=entry.block,
                error=entry.error,
                created_at=utcnow(),
            )
        )
        session.flush()
        counter = self._lock_sender(session, entry.sender)
        counter.next_nonce = max(counter.next_nonce, entry.nonce + 1)
