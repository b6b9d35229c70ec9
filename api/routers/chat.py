from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Response, status
from fastapi.responses import StreamingResponse

from api.deps import Cursor, Limit, ReadSessionDep, ResourcesDep, SessionDep, UserId
from api.errors import responses
from api.ratelimits import LimitedRoute, before_body, limit_chat
from api.sse import sse_event, sse_headers, with_keepalive
from shared.chat import service, tutor
from shared.chat.schemas import MessageIn, MessageOut, SessionDetail, SessionIn, SessionOut
from shared.errors import ProviderFailed
from shared.pagination import DEFAULT_LIMIT, Page

router = APIRouter(prefix="/api/chat/sessions", tags=["chat"], route_class=LimitedRoute)


@router.post("", status_code=status.HTTP_201_CREATED, responses=responses(401, 404, 422))
async def create_session(data: SessionIn, user_id: UserId, session: SessionDep) -> SessionOut:
    chat = await service.create_session(session, user_id, data)
    await session.commit()
    return SessionOut.model_validate(chat)


@router.get("", responses=responses(401, 422))
async def list_sessions(
    user_id: UserId,
    session: ReadSessionDep,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Page[SessionOut]:
    return await service.list_sessions(session, user_id, limit=limit, cursor=cursor)


@router.get("/{session_id}", responses=responses(401, 404))
async def get_session(session_id: str, user_id: UserId, session: ReadSessionDep) -> SessionDetail:
    return await service.session_detail(session, user_id, session_id)


@router.delete(
    "/{session_id}", status_code=status.HTTP_204_NO_CONTENT, responses=responses(401, 404)
)
async def delete_session(session_id: str, user_id: UserId, session: SessionDep) -> Response:
    await service.delete_session(session, user_id, session_id)
    await session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


async def _sse(events: AsyncIterator[tutor.TutorEvent]) -> AsyncIterator[bytes]:
    async for event in events:
        match event:
            case tutor.TokenEvent(text=text):
                yield sse_event("token", {"text": text})
            case tutor.CitationsEvent(citations=citations):
                yield sse_event("citations", [c.model_dump(exclude_none=True) for c in citations])
            case tutor.DoneEvent(message_id=message_id, usage=usage):
                yield sse_event("done", {"message_id": message_id, "usage": usage})
            case tutor.ErrorEvent(code=code, message=message):
                yield sse_event("error", {"code": code, "message": message})


@router.post(
    "/{session_id}/messages",
    responses={
        **responses(401, 404, 422, 429, 502),
        200: {
            "description": "With `Accept: text/event-stream`: `token` events, then "
            "`citations` and `done` (or `error`). Otherwise the finished message.",
            "content": {"text/event-stream": {}},
        },
    },
    response_model=MessageOut,
)
@before_body(limit_chat)
async def post_message(
    session_id: str,
    data: MessageIn,
    user_id: UserId,
    session: ReadSessionDep,
    resources: ResourcesDep,
    accept: Annotated[str, Header()] = "application/json",
) -> Response | MessageOut:
    """Ask the tutor. It answers from your own material, with citations."""
    chat = await service.get_session(session, user_id, session_id)
    await session.close()
    events = tutor.answer(resources, resources.llm, chat, data.content)
    if "text/event-stream" in accept:
        return StreamingResponse(
            with_keepalive(_sse(events)), media_type="text/event-stream", headers=sse_headers()
        )
    message_id: str | None = None
    async for event in events:
        if isinstance(event, tutor.ErrorEvent):
            raise ProviderFailed(event.message, details={"kind": event.code})
        if isinstance(event, tutor.DoneEvent):
            message_id = event.message_id
    async with resources.db.read_session() as fresh:
        stored = [
            m for m in await service.messages(fresh, session_id, last=1) if m.id == message_id
        ]
    return MessageOut.model_validate(stored[0])
