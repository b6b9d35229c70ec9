"""The learner's own settings, and their account as a whole: export and erasure."""

from __future__ import annotations

from fastapi import APIRouter, Response, status
from fastapi.responses import FileResponse
from starlette.background import BackgroundTask

from api.deps import ReadSessionDep, ResourcesDep, SessionDep, UserId
from api.errors import responses
from shared.account import erase, export
from shared.account.schemas import AccountDeleteIn
from shared.auth import preferences
from shared.auth.preferences import UserSettingsIn, UserSettingsOut

router = APIRouter(prefix="/api/me", tags=["me"])


@router.get("/settings", responses=responses(401))
async def get_settings(user_id: UserId, session: ReadSessionDep) -> UserSettingsOut:
    return await preferences.get_settings(session, user_id)


@router.patch("/settings", responses=responses(401, 422))
async def update_settings(
    data: UserSettingsIn, user_id: UserId, session: SessionDep
) -> UserSettingsOut:
    """`desired_retention` (0.7–0.99, default 0.9): the recall probability FSRS aims for
    when a card comes due; higher means more frequent reviews. `timezone` (IANA name,
    default UTC): the learner's days for streaks and daily history. Fields left out keep
    their value."""
    updated = await preferences.update_settings(session, user_id, data)
    await session.commit()
    return updated


@router.get(
    "/export",
    response_class=FileResponse,
    responses={200: {"content": {"application/zip": {}}}, **responses(401)},
)
async def export_account(user_id: UserId, resources: ResourcesDep) -> FileResponse:
    """Everything stored for this account as a zip: a JSON Lines file per table (account,
    materials and their extracted text, chats, quizzes, decks, paths, study events…), the
    uploaded files, and a manifest.json with counts. No password or key hashes."""
    path = await export.build_export(resources.db, resources.settings, user_id)
    return FileResponse(
        path,
        media_type="application/zip",
        filename=export.export_filename(),
        background=BackgroundTask(path.unlink, missing_ok=True),
    )


@router.delete("", status_code=status.HTTP_204_NO_CONTENT, responses=responses(401, 403, 422))
async def delete_account(
    data: AccountDeleteIn, user_id: UserId, resources: ResourcesDep
) -> Response:
    """Erase the account for good — every row, vector, file and job — and sign it out
    everywhere. The body must carry the account's password (403 when it is wrong)."""
    await erase.erase_account(resources, user_id, data.password)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
