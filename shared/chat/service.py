"""Chat sessions and their messages (services flush; the caller commits)."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.chat.models import ChatMessage, ChatSession
from shared.chat.schemas import MessageOut, SessionDetail, SessionIn, SessionOut
from shared.errors import NotFound
from shared.materials.models import Material
from shared.pagination import Page, newest_first


async def create_session(session: AsyncSession, user_id: str, data: SessionIn) -> ChatSession:
    material_ids = list(dict.fromkeys(data.material_ids))
    if material_ids:
        owned = await session.scalar(
            select(func.count())
            .select_from(Material)
            .where(Material.id.in_(material_ids), Material.user_id == user_id)
        )
        if owned != len(material_ids):
            raise NotFound("Some of the materials do not exist.", details=material_ids)
    chat = ChatSession(
        user_id=user_id, title=data.title.strip(), style=data.style, material_ids=material_ids
    )
    session.add(chat)
    await session.flush()
    return chat


async def get_session(session: AsyncSession, user_id: str, session_id: str) -> ChatSession:
    chat = await session.scalar(
        select(ChatSession).where(ChatSession.id == session_id, ChatSession.user_id == user_id)
    )
    if chat is None:
        raise NotFound("Chat session not found.")
    return chat


async def list_sessions(
    session: AsyncSession, user_id: str, *, limit: int, cursor: str | None
) -> Page[SessionOut]:
    query = select(ChatSession).where(ChatSession.user_id == user_id)
    page = await newest_first(session, query, ChatSession.id, limit=limit, cursor=cursor)
    return page.validated(SessionOut)


async def messages(
    session: AsyncSession, session_id: str, *, last: int | None = None
) -> list[ChatMessage]:
    query = select(ChatMessage).where(ChatMessage.session_id == session_id)
    if last is None:
        return list(await session.scalars(query.order_by(ChatMessage.id)))
    recent = await session.scalars(query.order_by(ChatMessage.id.desc()).limit(last))
    return list(reversed(list(recent)))


async def session_detail(session: AsyncSession, user_id: str, session_id: str) -> SessionDetail:
    chat = await get_session(session, user_id, session_id)
    history = [MessageOut.model_validate(m) for m in await messages(session, chat.id)]
    return SessionDetail(**SessionOut.model_validate(chat).model_dump(), messages=history)


async def delete_session(session: AsyncSession, user_id: str, session_id: str) -> None:
    chat = await get_session(session, user_id, session_id)
    await session.delete(chat)
