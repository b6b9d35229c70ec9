"""The `generate_quiz` job: questions from the quiz's materials, each citing its chunk.

A generative provider writes them as schema-checked JSON (`remote`); the offline
provider builds them from key sentences (`offline`). Safe to run twice: the questions of
an earlier, interrupted run are replaced.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select

from shared.clients.llm.base import ProviderError
from shared.jobs.errors import JobCancelled, PermanentJobError, TransientJobError
from shared.materials.ingest import Progress
from shared.materials.models import Chunk, Material, MaterialStatus
from shared.quizzes import offline, remote
from shared.quizzes.drafts import QuestionDraft, SourceText
from shared.quizzes.models import Question, Quiz, QuizStatus
from shared.resources import Resources

MAX_SOURCES = 5000
PROMPT_PASSAGES = 16  # what one model call sees, spread evenly over the material
PROMPT_CHARS = 30_000


async def _sources(resources: Resources, quiz: Quiz) -> list[SourceText]:
    async with resources.db.read_session() as session:
        query = select(Material.id, Material.status).where(Material.user_id == quiz.user_id)
        if quiz.material_ids:
            query = query.where(Material.id.in_(quiz.material_ids))
        materials = (await session.execute(query.order_by(Material.id))).all()
        if any(s in (MaterialStatus.PENDING, MaterialStatus.PROCESSING) for _, s in materials):
            raise TransientJobError("Waiting for the materials to finish processing.")
        ready = [m for m, s in materials if s == MaterialStatus.READY]
        rows = await session.execute(
            select(Chunk.id, Chunk.material_id, Chunk.text, Material.title)
            .join(Material, Material.id == Chunk.material_id)
            .where(Chunk.material_id.in_(ready), Chunk.user_id == quiz.user_id)
            .order_by(Chunk.material_id, Chunk.position)
            .limit(MAX_SOURCES)
        )
        return [SourceText(r.id, r.material_id, r.title, r.text) for r in rows]


def spread(sources: list[SourceText], count: int, budget: int) -> list[SourceText]:
    """At most `count` sources evenly spaced in reading order, within `budget` characters."""
    step = max(1, len(sources) / count)
    picked = [sources[int(i * step)] for i in range(min(count, len(sources)))]
    out: list[SourceText] = []
    used = 0
    for source in picked:
        if out and used + len(source.text) > budget:
            break
        out.append(source)
        used += len(source.text)
    return out


async def _drafts(
    resources: Resources, quiz: Quiz, sources: list[SourceText]
) -> list[QuestionDraft]:
    llm = resources.llm
    kinds = quiz.question_types
    if not llm.generative:
        return offline.build_questions(sources, quiz.num_questions, kinds, quiz.difficulty)
    chosen = spread(sources, PROMPT_PASSAGES, PROMPT_CHARS)
    try:
        return await remote.generate(llm, chosen, quiz.num_questions, kinds, quiz.difficulty)
    except remote.UnusableOutput as exc:
        raise PermanentJobError(str(exc)) from exc
    except ProviderError as exc:
        if exc.transient:
            raise TransientJobError(exc.message) from exc
        raise PermanentJobError(exc.message) from exc


async def generate_quiz(
    resources: Resources, user_id: str, payload: dict[str, Any], progress: Progress
) -> dict[str, Any]:
    quiz_id = str(payload["quiz_id"])
    async with resources.db.read_session() as session:
        quiz = await session.get(Quiz, quiz_id)
    if quiz is None or quiz.user_id != user_id:
        raise JobCancelled("The quiz was deleted.")
    await progress(10, "reading the materials")
    sources = await _sources(resources, quiz)
    if not sources:
        raise PermanentJobError("The quiz's materials have no text to ask questions about.")
    await progress(30, "writing questions")
    drafts = await _drafts(resources, quiz, sources)
    if not drafts:
        raise PermanentJobError(
            "The materials have no sentences to make questions from. Add some text and try again."
        )
    await progress(80, f"saving {len(drafts)} questions")
    async with resources.db.session() as session:
        current = await session.get(Quiz, quiz_id)
        if current is None:
            raise JobCancelled("The quiz was deleted.")
        await session.execute(delete(Question).where(Question.quiz_id == quiz_id))
        session.add_all(_question(current, n, d) for n, d in enumerate(drafts, 1))
        current.status = QuizStatus.READY
        current.error = None
    await progress(100, "done")
    return {"quiz_id": quiz_id, "questions": len(drafts)}


def _question(quiz: Quiz, position: int, draft: QuestionDraft) -> Question:
    return Question(
        quiz_id=quiz.id,
        user_id=quiz.user_id,
        position=position,
        kind=draft.kind,
        prompt=draft.prompt,
        options=draft.options,
        answer=draft.answer,
        explanation=draft.explanation,
        topic=draft.topic,
        chunk_id=draft.chunk_id,
        material_id=draft.material_id,
    )


async def mark_quiz_failed(resources: Resources, payload: dict[str, Any], error: str) -> None:
    async with resources.db.session() as session:
        quiz = await session.get(Quiz, str(payload["quiz_id"]))
        if quiz is not None:
            quiz.status = QuizStatus.FAILED
            quiz.error = error
