"""The `generate_quiz` job: questions from the quiz's materials, each citing its chunk.

A generative provider writes them as schema-checked JSON (`remote`); the offline
provider builds them from key sentences (`offline`). Safe to run twice: the questions of
an earlier, interrupted run are replaced.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete

from shared.clients.llm.base import ProviderError
from shared.jobs.errors import JobCancelled, PermanentJobError
from shared.materials.ingest import Progress
from shared.materials.passages import StudyChunk, job_error, ready_chunks, spread
from shared.quizzes import offline, remote
from shared.quizzes.drafts import QuestionDraft
from shared.quizzes.models import Question, Quiz, QuizStatus
from shared.resources import Resources

PROMPT_PASSAGES = 16  # what one model call sees, spread evenly over the material
PROMPT_CHARS = 30_000


async def _drafts(
    resources: Resources, quiz: Quiz, sources: list[StudyChunk]
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
        raise job_error(exc) from exc


async def generate_quiz(
    resources: Resources, user_id: str, payload: dict[str, Any], progress: Progress
) -> dict[str, Any]:
    quiz_id = str(payload["quiz_id"])
    async with resources.db.read_session() as session:
        quiz = await session.get(Quiz, quiz_id)
    if quiz is None or quiz.user_id != user_id:
        raise JobCancelled("The quiz was deleted.")
    await progress(10, "reading the materials")
    sources = await ready_chunks(resources.db, quiz.user_id, quiz.material_ids)
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
