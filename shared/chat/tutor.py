"""The tutor's turn: retrieve from the learner's own material, stream the model's answer,
then persist it with its citations.

Nothing half-written is stored: the learner's message is saved first, the answer only once
it is complete. A client that goes away closes this generator, which closes the model's
stream (and so its HTTP request) at once.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

from shared import metrics
from shared.chat import service
from shared.chat.models import ChatMessage, ChatSession
from shared.chat.schemas import Citation
from shared.clients.embeddings import terms
from shared.clients.llm.base import (
    LLM,
    AnswerRequest,
    Passage,
    ProviderError,
    TextDelta,
    Turn,
    Usage,
)
from shared.materials.chunking import estimate_tokens
from shared.materials.search import search
from shared.progress import events
from shared.resources import Resources

RETRIEVE_K = 6
HISTORY_MESSAGES = 20
HISTORY_TOKEN_BUDGET = 2000
QUOTE_CHARS = 300
_MARKER = re.compile(r"\[(\d{1,2})\]")
_SENTENCE = re.compile(r"(?<=[.!?])\s+")


@dataclass(frozen=True, slots=True)
class TokenEvent:
    text: str


@dataclass(frozen=True, slots=True)
class CitationsEvent:
    citations: list[Citation]


@dataclass(frozen=True, slots=True)
class DoneEvent:
    message_id: str
    usage: dict[str, int]


@dataclass(frozen=True, slots=True)
class ErrorEvent:
    code: str
    message: str


TutorEvent = TokenEvent | CitationsEvent | DoneEvent | ErrorEvent


def _history_within_budget(messages: list[ChatMessage]) -> list[Turn]:
    turns: list[Turn] = []
    budget = HISTORY_TOKEN_BUDGET
    for message in reversed(messages):
        cost = estimate_tokens(message.content)
        if cost > budget:
            break
        budget -= cost
        turns.insert(
            0,
            Turn(
                role="assistant" if message.role == "assistant" else "user",
                content=message.content,
            ),
        )
    return turns


async def _retrieve(resources: Resources, chat: ChatSession, question: str) -> list[Passage]:
    async with resources.db.read_session() as session:
        hits = await search(
            session,
            resources.store,
            resources.embedder,
            chat.user_id,
            question,
            limit=RETRIEVE_K,
            material_ids=chat.material_ids or None,
        )
    return [
        Passage(
            chunk_id=h.chunk_id,
            material_id=h.material_id,
            title=h.material_title,
            text=h.text,
            page=h.location.page,
            start_s=h.location.start_s,
        )
        for h in hits
    ]


def _best_quote(passage: Passage, answer: str) -> str:
    wanted = set(terms(answer))
    sentences = [s for s in _SENTENCE.split(passage.text) if s.strip()] or [passage.text]
    best = max(sentences, key=lambda s: len(wanted & set(terms(s))))
    return best[:QUOTE_CHARS]


def cite(answer: str, passages: list[Passage]) -> list[Citation]:
    """The passages the answer points at with [n] markers (all of them when it uses none)."""
    marked = [int(n) for n in _MARKER.findall(answer) if 1 <= int(n) <= len(passages)]
    chosen = list(dict.fromkeys(marked)) or list(range(1, min(3, len(passages)) + 1))
    return [
        Citation(
            material_id=passages[n - 1].material_id,
            chunk_id=passages[n - 1].chunk_id,
            title=passages[n - 1].title,
            page=passages[n - 1].page,
            start_s=passages[n - 1].start_s,
            quote=_best_quote(passages[n - 1], answer),
        )
        for n in chosen
    ]


async def _save(
    resources: Resources, chat: ChatSession, role: str, content: str, **extra: Any
) -> str:
    async with resources.db.session() as session:
        message = ChatMessage(
            session_id=chat.id, user_id=chat.user_id, role=role, content=content, **extra
        )
        session.add(message)
        if role == "user":
            await events.record(
                session,
                chat.user_id,
                "chat",
                minutes=events.CHAT_MINUTES,
                details={"session_id": chat.id},
            )
        await session.flush()
        return message.id


async def answer(
    resources: Resources, llm: LLM, chat: ChatSession, question: str
) -> AsyncIterator[TutorEvent]:
    """One turn of the conversation, as events: tokens, then citations and done (or error)."""
    async with resources.db.read_session() as session:
        earlier = await service.messages(session, chat.id, last=HISTORY_MESSAGES)
    _, passages = await asyncio.gather(
        _save(resources, chat, "user", question), _retrieve(resources, chat, question)
    )
    request = AnswerRequest(
        question=question,
        history=_history_within_budget(earlier),
        passages=passages,
        style="socratic" if chat.style == "socratic" else "direct",
    )
    parts: list[str] = []
    usage = Usage(input_tokens=0, output_tokens=0)
    try:
        async with aclosing(llm.stream_answer(request)) as stream:
            async for event in stream:
                if isinstance(event, TextDelta):
                    parts.append(event.text)
                    yield TokenEvent(event.text)
                else:
                    usage = event
    except ProviderError as exc:
        await metrics.count_provider_error(resources.redis, resources.settings.queue_name, exc)
        yield ErrorEvent(code=exc.kind, message=str(exc))
        return
    text = "".join(parts)
    citations = cite(text, passages) if passages else []
    usage_out = {"input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens}
    message_id = await _save(
        resources,
        chat,
        "assistant",
        text,
        citations=[c.model_dump() for c in citations],
        usage=usage_out,
        model=llm.model_id,
    )
    yield CitationsEvent(citations)
    yield DoneEvent(message_id=message_id, usage=usage_out)
