"""The database layer on whichever backend the suite runs on (SQLite, or PostgreSQL with
TEST_DATABASE_URL): engine setup, UTC timestamps, and values one backend refuses."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import httpx
import pytest
from sqlalchemy import String, select, text
from sqlalchemy.exc import DBAPIError, OperationalError, StatementError

from shared.auth.models import User
from shared.config import Settings
from shared.db import Database
from shared.flashcards.models import Card
from shared.ids import new_id
from shared.materials.keyterms import topic_of
from shared.quizzes.models import Question
from shared.resources import Resources
from tests.conftest import ON_POSTGRES, Account, assert_error


async def test_engine_is_set_up_for_its_backend(migrated: Settings) -> None:
    db = Database(migrated)
    try:
        async with db.transaction() as connection:
            if migrated.is_sqlite:
                assert await connection.scalar(text("PRAGMA journal_mode")) == "wal"
                assert await connection.scalar(text("PRAGMA foreign_keys")) == 1
                return
            level = await connection.scalar(text("SHOW transaction_isolation"))
            assert level == "read committed"
        pool = db.engine.pool
        assert pool.size() == migrated.database_pool_size  # type: ignore[attr-defined]
        assert db.read_engine.pool is pool
        async with db.read_session() as session:  # one snapshot per read session
            level = await session.scalar(text("SHOW transaction_isolation"))
            assert level == "repeatable read"
    finally:
        await db.dispose()


async def test_timestamps_come_back_aware_in_utc(resources: Resources) -> None:
    """UTCDateTime stores any aware datetime as the same instant and reads it back in UTC."""
    at = datetime(2026, 3, 29, 1, 30, tzinfo=timezone(timedelta(hours=-7)))
    user_id = new_id()
    async with resources.db.session() as session:
        session.add(
            User(
                id=user_id,
                email=f"{user_id}@example.com",
                password_hash="x",
                created_at=at,
                updated_at=at,
            )
        )
    async with resources.db.read_session() as session:
        created = await session.scalar(select(User.created_at).where(User.id == user_id))
    assert created == at
    assert created is not None and created.utcoffset() == timedelta(0)
    assert created.tzinfo is not None and created.tzname() == "UTC"
    naive = at.replace(tzinfo=None)
    with pytest.raises(StatementError, match="naive datetime"):
        async with resources.db.session() as session:
            session.add(User(email=f"n-{user_id}@example.com", password_hash="x", created_at=naive))


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("post", "/api/materials/text", {"title": "Cells\x00", "text": "The cell.\x00"}),
        ("post", "/api/chat/sessions", {"title": "Biology\x00"}),
        ("post", "/api/decks", {"title": "Deck\x00"}),
        ("post", "/api/auth/api-keys", {"name": "laptop\x00"}),
        ("get", "/api/jobs/01a2%00", None),
        ("get", "/api/materials?cursor=01a2%00", None),
    ],
)
async def test_a_nul_character_is_a_4xx_never_a_500(
    client: httpx.AsyncClient, alice: Account, method: str, path: str, body: object
) -> None:
    """PostgreSQL cannot store U+0000 in text (SQLite can): refused with 422, never a 500."""
    response = await client.request(method, path, headers=alice.headers, json=body)
    if ON_POSTGRES:
        assert_error(response, 422, "validation_error")
    else:
        assert response.status_code < 500, response.text


async def test_a_nul_in_a_chat_question_is_refused_before_the_stream_starts(
    client: httpx.AsyncClient, alice: Account
) -> None:
    chat = await client.post("/api/chat/sessions", headers=alice.headers, json={"title": "x"})
    assert chat.status_code == 201, chat.text
    for accept in ("application/json", "text/event-stream"):
        response = await client.post(
            f"/api/chat/sessions/{chat.json()['id']}/messages",
            headers={**alice.headers, "accept": accept},
            json={"content": "what is a cell?\x00"},
        )
        assert_error(response, 422, "validation_error")


@pytest.mark.skipif(not ON_POSTGRES, reason="asyncpg's error classes; SQLite's are already so")
@pytest.mark.parametrize(
    ("sql", "transient"),
    [
        ("DO $$ BEGIN RAISE EXCEPTION 'x' USING ERRCODE = 'serialization_failure'; END $$", True),
        ("DO $$ BEGIN RAISE EXCEPTION 'x' USING ERRCODE = 'deadlock_detected'; END $$", True),
        ("SELECT pg_terminate_backend(pg_backend_pid())", True),
        ("SELECT 1 / 0", False),
    ],
)
async def test_transient_postgres_errors_are_operational_errors(
    resources: Resources, sql: str, transient: bool
) -> None:
    """What the job wrapper retries (OperationalError) includes PostgreSQL's transient errors."""
    with pytest.raises(DBAPIError) as raised:
        async with resources.db.transaction() as connection:
            await connection.execute(text(sql))
    assert isinstance(raised.value, OperationalError) is transient, repr(raised.value)
    async with resources.db.transaction() as connection:  # the pool recovered
        assert await connection.scalar(text("SELECT 1")) == 1


def test_topic_labels_fit_their_columns() -> None:
    """PostgreSQL enforces String(n) (SQLite does not): a topic made of one very long word
    must still fit the columns it is stored in."""
    long_word = "Pneumono" + "ultramicroscopic" * 20
    label = topic_of(f"The {long_word} is long. The {long_word} is a word.")
    for column in (Card.__table__.c.topic, Question.__table__.c.topic):
        assert isinstance(column.type, String) and column.type.length is not None
        assert 0 < len(label) <= column.type.length
