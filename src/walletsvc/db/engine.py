"""Engine and session factory, and where the database URL comes from."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from walletsvc.config import Settings
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
    def connect(cls, url: str, *, pool_size: int = 20, max_overflow: int = 20) -> Database:
        engine = create_async_engine(
            url,
            pool_size=pool_size,
            max_overflow=max_overflow,
            # No ping on every checkout (a round trip per transaction on the hot path): connections are
            # recycled instead, and a dead one fails its request, which the client retries.
            pool_recycle=1800,
            connect_args={"server_settings": {"application_name": "walletsvc"}},
        )
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
