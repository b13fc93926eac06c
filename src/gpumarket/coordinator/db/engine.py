"""Engine and session factory; SQLite gets WAL and a busy timeout so threads share it safely."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, CursorResult, Engine, Result, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from gpumarket.coordinator.db.base import json_default
from gpumarket.errors import InvalidRequest

_HOLDS_WRITER = "gpumarket_holds_sqlite_writer"
READ_ONLY = "gpumarket_read_only"
"""Execution option of engines whose sessions only read (see :func:`make_read_session_factory`)."""
WRITER_WAIT_SECONDS = 30.0


POSTGRES_CONNECT_ARGS = {"client_encoding": "utf8"}
"""Text always travels as UTF-8, so psycopg decodes it even from a database it would otherwise
hand back as bytes (one in SQL_ASCII), and :func:`require_utf8` can say what is wrong."""


def require_utf8(connection: Connection) -> None:
    """Refuse a PostgreSQL database not in UTF8: job specs, logs and reasons are Unicode, and
    a SQL_ASCII one would store them unchecked and refuse JSON escapes past ASCII."""
    if connection.dialect.name != "postgresql":
        return
    encoding = connection.exec_driver_sql("SHOW server_encoding").scalar()
    if str(encoding).upper() not in ("UTF8", "UTF-8"):
        name = connection.exec_driver_sql("SELECT current_database()").scalar()
        raise InvalidRequest(
            f"database {name!r} is in {encoding} encoding; gpumarket needs UTF8. Create it with "
            f"CREATE DATABASE {name} ENCODING 'UTF8' TEMPLATE template0 (or initdb "
            "--encoding=UTF8 for the whole cluster)"
        )


def _json_serializer(value: Any) -> str:
    return json.dumps(value, default=json_default, separators=(",", ":"))


def make_engine(url: str) -> Engine:
    """Create the engine for ``url`` with settings fit for a threaded web server."""
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            json_serializer=_json_serializer,
            pool_size=20,
            max_overflow=20,
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()
            # Take the write lock at BEGIN: a deferred transaction that later writes can fail
            # with SQLITE_BUSY at once in WAL mode instead of waiting for the busy timeout.
            dbapi_connection.isolation_level = None

        # SQLite has one writer. Threads of this process queue for it on a Python lock, handed
        # over the moment a transaction ends, instead of SQLite's busy handler, which sleeps in
        # steps of up to 100 ms and turns contention into long tail latencies. The lock is held
        # from BEGIN until the connection goes back to the pool; other processes still meet
        # SQLite's own locking and busy timeout.
        writer = threading.Lock()

        @event.listens_for(engine, "begin")
        def _sqlite_begin_immediate(connection: Any) -> None:
            if connection.get_execution_options().get(READ_ONLY):
                connection.exec_driver_sql("BEGIN")  # WAL readers never wait for the writer
                return
            info = connection.connection.info
            if not info.get(_HOLDS_WRITER) and writer.acquire(timeout=WRITER_WAIT_SECONDS):
                info[_HOLDS_WRITER] = True
            connection.exec_driver_sql("BEGIN IMMEDIATE")

        def _release(_dbapi_connection: Any, record: Any, *_: Any) -> None:
            if record is not None and record.info.pop(_HOLDS_WRITER, False):
                writer.release()

        event.listen(engine, "checkin", _release)
        event.listen(engine, "invalidate", _release)
        return engine
    return create_engine(
        url,
        connect_args=POSTGRES_CONNECT_ARGS,
        json_serializer=_json_serializer,
        pool_size=20,
        max_overflow=20,
        pool_pre_ping=True,
    )


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded attributes after commit (responses are built after it)."""
    return sessionmaker(engine, expire_on_commit=False)


def make_read_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions for requests that only read: on SQLite they neither take nor wait for the
    single writer lock (WAL gives them a consistent snapshot)."""
    return sessionmaker(engine.execution_options(**{READ_ONLY: True}), expire_on_commit=False)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """Commit on success, roll back on any error: the unit of work of a request or a loop tick."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def rowcount(result: Result[Any]) -> int:
    """Rows matched by an UPDATE or DELETE (the typed API hides it behind CursorResult)."""
    assert isinstance(result, CursorResult)
    return int(result.rowcount)
