"""Engine and session factory, and where the database URL comes from."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from walletsvc.config import Settings
from walletsvc.db import faults
from walletsvc.db.embedded import start_embedded


def normalise_url(url: str) -> str:
    """Accept the usual spellings of a PostgreSQL URL and use the asyncpg driver."""
    for prefix in ("postgres://", "postgresql://", "postgresql+psycopg://", "postgresql+psycopg2://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    return url


def resolve_database_url(settings: Settings) -> str:
    if settings.database_url is not None and settings.database_url.get_secret_value():
        return normalise_url(settings.database_url.get_secret_value())
    return start_embedded(settings.data_dir)


@dataclass(frozen=True, slots=True)
class Database:
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]

    @classmethod
    def connect(
        cls, url: str, *, pool_size: int = 20, max_overflow: int = 20, pool_timeout: float = 30.0
    ) -> Database:
        engine = create_async_engine(
            url,
            pool_size=pool_size,
            max_overflow=max_overflow,
            pool_timeout=pool_timeout,  # then 503 DATABASE_UNAVAILABLE
            # No ping on every checkout (a round trip per transaction on the hot path): a connection the
            # server already closed is refused at checkout for free, and work whose connection dies
            # under it is run again on a fresh one where that is safe (api/routing.py, the writer).
            pool_recycle=1800,
            # A statement's parameters (webhook payloads, descriptions) never reach an error message.
            hide_parameters=True,
            # A server that does not answer fails the connect in seconds (503), not asyncpg's minute.
            connect_args={"server_settings": {"application_name": "walletsvc"}, "timeout": 10},
        )
        # Lost connections raise ConnectionLost and are invalidated, never reused; see db/faults.py.
        faults.install(engine)
        return cls(engine=engine, sessionmaker=async_sessionmaker(engine, expire_on_commit=False))

    async def dispose(self) -> None:
        await self.engine.dispose()


@asynccontextmanager
async def unit_of_work(db: Database) -> AsyncIterator[AsyncSession]:
    """A session that commits when the block succeeds and rolls back when it raises: for the CLI and
    background jobs (requests use TransactionalRoute)."""
    async with db.sessionmaker() as session:
        try:
            yield session
        except BaseException:
            await session.rollback()
            raise
        await session.commit()
