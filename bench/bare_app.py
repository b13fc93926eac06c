"""The baseline of bench/api_throughput.py: a bare FastAPI + SQLAlchemy endpoint that does one
INSERT per request, on the same engine settings as the coordinator."""

import sys
from collections.abc import Iterator
from typing import Annotated

import uvicorn
from fastapi import Depends, FastAPI
from sqlalchemy import Integer, String
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from gpumarket.coordinator.db.engine import make_engine, make_session_factory, session_scope


class Base(DeclarativeBase):
    pass


class Row(Base):
    __tablename__ = "rows"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    payload: Mapped[str] = mapped_column(String(64))


def build(db_url: str) -> FastAPI:
    engine = make_engine(db_url)
    Base.metadata.create_all(engine)
    factory = make_session_factory(engine)
    app = FastAPI()

    def session() -> Iterator[Session]:
        with session_scope(factory) as s:
            yield s

    @app.post("/insert")
    def insert(s: Annotated[Session, Depends(session, scope="function")]) -> dict[str, int]:
        row = Row(payload="x" * 32)
        s.add(row)
        s.flush()
        return {"id": row.id}

    return app


if __name__ == "__main__":
    uvicorn.run(
        build(sys.argv[1]),
        host="127.0.0.1",
        port=int(sys.argv[2]),
        log_level="warning",
        access_log=False,
    )
