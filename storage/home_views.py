"""Who opened the App Home, and what their last published Home showed waiting for them.

Kept in the database, not in one process: with several replicas, the one that commits a change is not
necessarily the one that received the person's `app_home_opened`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import HomeViewRow


async def home_opened(*, session: AsyncSession, user_id: str, now: datetime) -> None:
    """Remember that `user_id` opened the Home (again)."""
    # the dialect in use is loaded already; importing the other one would only slow the start
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as postgresql_insert

        statement: Any = postgresql_insert(HomeViewRow)
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        statement = sqlite_insert(HomeViewRow)
    statement = statement.values(user_id=user_id, opened_at=now, digest="")
    await session.execute(
        statement.on_conflict_do_update(index_elements=["user_id"], set_={"opened_at": statement.excluded.opened_at})
    )


async def home_viewers(*, session: AsyncSession) -> dict[str, str]:
    """Everyone who opened the Home → the digest of what their last published Home showed waiting."""
    rows = await session.execute(select(HomeViewRow.user_id, HomeViewRow.digest))
    return {str(user): str(digest) for user, digest in rows.all()}


async def home_published(*, session: AsyncSession, user_id: str, digest: str, now: datetime) -> None:
    """Record what the Home just published for `user_id` showed waiting."""
    await session.execute(
        update(HomeViewRow).where(HomeViewRow.user_id == user_id).values(digest=digest, published_at=now)
    )
