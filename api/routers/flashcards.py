"""Flashcards: decks, cards, FSRS reviews and the due queue, CSV/Anki export, CSV import."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, File, Form, Query, Response, UploadFile, status
from fastapi.responses import FileResponse, JSONResponse
from sqlalchemy import select
from starlette.background import BackgroundTask

from api.deps import Cursor, Limit, ReadSessionDep, ResourcesDep, SessionDep, UserId
from api.errors import responses
from shared.errors import PayloadTooLarge
from shared.flashcards import service as flashcards
from shared.flashcards import transfer
from shared.flashcards.models import Card
from shared.flashcards.schemas import (
    CardIn,
    CardOut,
    CardPatch,
    DeckCreated,
    DeckDetail,
    DeckIn,
    DeckOut,
    DueCards,
    ImportResult,
    ReviewIn,
    ReviewOut,
    ReviewResult,
)
from shared.jobs import service as jobs
from shared.jobs.schemas import JobOut
from shared.pagination import DEFAULT_LIMIT, Page

router = APIRouter(prefix="/api", tags=["flashcards"])


@router.post(
    "/decks",
    status_code=status.HTTP_201_CREATED,
    responses={
        **responses(401, 404, 422),
        202: {"model": DeckCreated, "description": "With `generate`: the deck and its job."},
    },
    response_model=DeckOut,
)
async def create_deck(
    data: DeckIn, user_id: UserId, session: SessionDep, resources: ResourcesDep
) -> Response | DeckOut:
    """An empty deck (201), or with `generate` a deck filled by a `generate_deck` job (202)."""
    deck, job = await flashcards.create_deck(session, user_id, data)
    if job is None:
        await session.commit()
        return DeckOut.model_validate(deck)
    await jobs.commit_and_enqueue(session, resources.redis)
    created = DeckCreated(deck=DeckOut.model_validate(deck), job=JobOut.model_validate(job))
    return JSONResponse(created.model_dump(mode="json"), status_code=status.HTTP_202_ACCEPTED)


@router.get("/decks", responses=responses(401, 422))
async def list_decks(
    user_id: UserId, session: ReadSessionDep, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
) -> Page[DeckOut]:
    return await flashcards.list_decks(session, user_id, limit=limit, cursor=cursor)


@router.post(
    "/decks/import", status_code=status.HTTP_201_CREATED, responses=responses(401, 413, 422)
)
async def import_deck(
    file: Annotated[UploadFile, File(description="A CSV with a `front,back` header row.")],
    user_id: UserId,
    session: SessionDep,
    title: Annotated[str | None, Form(max_length=200)] = None,
) -> ImportResult:
    """A new deck from a CSV file (at most 2 MB)."""
    data = await file.read(transfer.MAX_IMPORT_BYTES + 1)
    if len(data) > transfer.MAX_IMPORT_BYTES:
        raise PayloadTooLarge("The CSV is larger than 2 MB.")
    cards = transfer.parse_csv(data)
    name = (title or "").strip() or Path(file.filename or "Imported deck").stem[:200]
    deck, _ = await flashcards.create_deck(session, user_id, DeckIn(title=name or "Imported"))
    session.add_all(flashcards.new_cards(deck, cards))
    await session.commit()
    return ImportResult(deck=DeckOut.model_validate(deck), imported=len(cards))


@router.get("/decks/{deck_id}", responses=responses(401, 404))
async def get_deck(deck_id: str, user_id: UserId, session: ReadSessionDep) -> DeckDetail:
    return await flashcards.deck_detail(session, user_id, deck_id)


@router.delete(
    "/decks/{deck_id}", status_code=status.HTTP_204_NO_CONTENT, responses=responses(401, 404)
)
async def delete_deck(
    deck_id: str, user_id: UserId, session: SessionDep, resources: ResourcesDep
) -> Response:
    """Remove the deck with its cards and their reviews (and cancel its generation job)."""
    job_id = await flashcards.delete_deck(session, user_id, deck_id)
    await jobs.commit_cancelling(session, resources.redis, user_id, job_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/decks/{deck_id}/cards", responses=responses(401, 404, 422))
async def list_cards(
    deck_id: str,
    user_id: UserId,
    session: ReadSessionDep,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Page[CardOut]:
    """The deck's cards, oldest first."""
    return await flashcards.list_cards(session, user_id, deck_id, limit=limit, cursor=cursor)


@router.post(
    "/decks/{deck_id}/cards",
    status_code=status.HTTP_201_CREATED,
    responses=responses(401, 404, 422),
)
async def add_card(deck_id: str, data: CardIn, user_id: UserId, session: SessionDep) -> CardOut:
    card = await flashcards.add_card(session, user_id, deck_id, data)
    await session.commit()
    return CardOut.model_validate(card)


@router.get(
    "/decks/{deck_id}/export",
    responses={
        **responses(401, 404, 422),
        200: {
            "description": "The deck as a CSV (`front,back` header) or an Anki package.",
            "content": {"text/csv": {}, "application/apkg": {}},
        },
    },
    response_class=Response,
)
async def export_deck(
    deck_id: str,
    user_id: UserId,
    session: ReadSessionDep,
    format: Annotated[Literal["apkg", "csv"], Query()] = "csv",
) -> Response:
    """Download the deck: `csv` for spreadsheets and other apps, `apkg` to open in Anki."""
    deck = await flashcards.get_deck(session, user_id, deck_id)
    rows = (
        await session.execute(
            select(Card.id, Card.front, Card.back).where(Card.deck_id == deck.id).order_by(Card.id)
        )
    ).all()
    await session.close()
    filename = transfer.filename_for(deck.title, format)
    disposition = {"Content-Disposition": f'attachment; filename="{filename}"'}
    if format == "csv":
        body = transfer.to_csv([(r.front, r.back) for r in rows])
        return Response(body, media_type="text/csv; charset=utf-8", headers=disposition)
    path = await asyncio.to_thread(
        transfer.write_apkg, deck.id, deck.title, [(r.id, r.front, r.back) for r in rows]
    )
    return FileResponse(
        path,
        media_type="application/apkg",
        filename=filename,
        background=BackgroundTask(path.unlink, missing_ok=True),
    )


@router.patch("/cards/{card_id}", responses=responses(401, 404, 422))
async def update_card(
    card_id: str, data: CardPatch, user_id: UserId, session: SessionDep
) -> CardOut:
    card = await flashcards.update_card(session, user_id, card_id, data)
    await session.commit()
    return CardOut.model_validate(card)


@router.delete(
    "/cards/{card_id}", status_code=status.HTTP_204_NO_CONTENT, responses=responses(401, 404)
)
async def delete_card(card_id: str, user_id: UserId, session: SessionDep) -> Response:
    await flashcards.delete_card(session, user_id, card_id)
    await session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/cards/{card_id}/reviews",
    status_code=status.HTTP_201_CREATED,
    responses=responses(401, 404, 409, 422),
)
async def review_card(
    card_id: str, data: ReviewIn, user_id: UserId, session: SessionDep
) -> ReviewResult:
    """Rate a recall (again, hard, good, easy). FSRS, at your desired retention, schedules
    the next review; the answer says when the card is due and its state. Every review is
    kept."""
    result = await flashcards.review_card(session, user_id, card_id, data)
    await session.commit()
    return result


@router.get("/cards/{card_id}/reviews", responses=responses(401, 404))
async def list_reviews(card_id: str, user_id: UserId, session: ReadSessionDep) -> list[ReviewOut]:
    """The card's review history, oldest first."""
    reviews = await flashcards.list_reviews(session, user_id, card_id)
    return [ReviewOut.model_validate(r) for r in reviews]


@router.get("/reviews/due", responses=responses(401, 404, 422))
async def due_cards(
    user_id: UserId,
    session: ReadSessionDep,
    deck_id: Annotated[str | None, Query(max_length=64)] = None,
    limit: Limit = DEFAULT_LIMIT,
) -> DueCards:
    """What to review now, the most overdue first; optionally from one deck."""
    return await flashcards.due_cards(session, user_id, deck_id=deck_id, limit=limit)
