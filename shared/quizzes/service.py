"""Quizzes: creation (row + generation job), reads, grading attempts (services flush;
the caller commits)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.clients.llm.base import LLM
from shared.db import Database
from shared.errors import Conflict, InvalidInput, NotFound
from shared.flashcards.service import forget_related
from shared.jobs import service as jobs
from shared.jobs.models import Job
from shared.materials.models import Chunk, Material
from shared.materials.service import require_owned
from shared.pagination import Page, newest_first
from shared.progress import events
from shared.quizzes import grading
from shared.quizzes.models import Attempt, Question, Quiz, QuizStatus
from shared.quizzes.schemas import (
    AnswerIn,
    AttemptIn,
    AttemptOut,
    QuestionOut,
    QuestionResult,
    QuizDetail,
    QuizIn,
    QuizOut,
    Source,
)

GENERATE_QUIZ = "generate_quiz"


async def _default_title(session: AsyncSession, user_id: str, material_ids: list[str]) -> str:
    if not material_ids:
        return "Quiz on all my materials"
    if len(material_ids) > 1:
        return f"Quiz on {len(material_ids)} materials"
    title = await session.scalar(
        select(Material.title).where(Material.id == material_ids[0], Material.user_id == user_id)
    )
    return f"Quiz: {title}"[:200]


async def create_quiz(session: AsyncSession, user_id: str, data: QuizIn) -> tuple[Quiz, Job]:
    """A quiz and its queued `generate_quiz` job (enqueued after commit)."""
    material_ids = list(dict.fromkeys(data.material_ids))
    await require_owned(session, user_id, material_ids)
    quiz = Quiz(
        user_id=user_id,
        title=data.title or await _default_title(session, user_id, material_ids),
        material_ids=material_ids,
        num_questions=data.num_questions,
        question_types=list(data.question_types),
        difficulty=data.difficulty,
        status=QuizStatus.GENERATING,
    )
    session.add(quiz)
    await session.flush()
    job = jobs.create_job(session, user_id, GENERATE_QUIZ, {"quiz_id": quiz.id})
    await session.flush()
    quiz.job_id = job.id
    return quiz, job


async def get_quiz(session: AsyncSession, user_id: str, quiz_id: str) -> Quiz:
    quiz = await session.scalar(select(Quiz).where(Quiz.id == quiz_id, Quiz.user_id == user_id))
    if quiz is None:
        raise NotFound("Quiz not found.")
    return quiz


async def _questions(session: AsyncSession, quiz_id: str) -> list[Question]:
    query = select(Question).where(Question.quiz_id == quiz_id).order_by(Question.position)
    return list(await session.scalars(query))


def question_out(question: Question) -> QuestionOut:
    return QuestionOut(
        id=question.id,
        position=question.position,
        type=question.kind,
        question=question.prompt,
        options=question.options,
        topic=question.topic,
    )


async def quiz_detail(session: AsyncSession, user_id: str, quiz_id: str) -> QuizDetail:
    """The quiz with its questions, never their answers."""
    quiz = await get_quiz(session, user_id, quiz_id)
    questions = [question_out(q) for q in await _questions(session, quiz.id)]
    return QuizDetail(**QuizOut.model_validate(quiz).model_dump(), questions=questions)


async def list_quizzes(
    session: AsyncSession, user_id: str, *, limit: int, cursor: str | None
) -> Page[QuizOut]:
    query = select(Quiz).where(Quiz.user_id == user_id)
    page = await newest_first(session, query, Quiz.id, limit=limit, cursor=cursor)
    return page.validated(QuizOut)


async def delete_quiz(session: AsyncSession, user_id: str, quiz_id: str) -> str | None:
    """Delete the quiz with its questions and attempts; return its job id (to cancel)."""
    quiz = await get_quiz(session, user_id, quiz_id)
    await session.delete(quiz)
    await session.flush()
    return quiz.job_id


def _checked_answers(questions: list[Question], answers: list[AnswerIn]) -> dict[str, str | bool]:
    known = {q.id for q in questions}
    unknown = sorted({a.question_id for a in answers} - known)
    if unknown:
        raise InvalidInput(
            "Some answers are for questions that are not in this quiz.", details=unknown
        )
    ids = [a.question_id for a in answers]
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        raise InvalidInput("Each question can be answered only once per attempt.", details=repeated)
    return {a.question_id: a.answer for a in answers}


async def _grade(llm: LLM, questions: list[Question], answers: dict[str, str | bool]) -> list[bool]:
    verdicts: list[bool] = []
    unsure: list[tuple[int, grading.ShortAnswer]] = []
    for question in questions:
        given = answers.get(question.id)
        if given is None:
            verdicts.append(False)
        elif question.kind == "multiple_choice":
            verdicts.append(grading.choice(given, question.options or []) == question.answer)
        elif question.kind == "true_false":
            verdicts.append(grading.truth(given) is (question.answer == "true"))
        else:
            matched = grading.short_answer_matches(str(given), question.answer)
            verdicts.append(matched)
            if not matched and str(given).strip():
                item = grading.ShortAnswer(question.prompt, question.answer, str(given))
                unsure.append((len(verdicts) - 1, item))
    judged = await grading.judge(llm, [item for _, item in unsure])
    for (index, _), verdict in zip(unsure, judged, strict=True):
        verdicts[index] = bool(verdict)
    return verdicts


async def _sources(session: AsyncSession, questions: Sequence[Question]) -> dict[str, Source]:
    """Each question's citation: its material's title and the chunk's page or time."""
    chunk_ids = {q.chunk_id for q in questions if q.chunk_id}
    rows = await session.execute(
        select(Chunk.id, Chunk.material_id, Chunk.page, Chunk.start_s, Material.title)
        .join(Material, Material.id == Chunk.material_id)
        .where(Chunk.id.in_(chunk_ids))
    )
    found = {r.id: r for r in rows}
    sources = {}
    for q in questions:
        row = found.get(q.chunk_id or "")
        sources[q.id] = Source(
            chunk_id=q.chunk_id,
            material_id=q.material_id,
            title=row.title if row else None,
            page=row.page if row else None,
            start_s=row.start_s if row else None,
        )
    return sources


def _shown(answer: str | bool | None) -> str | None:
    if answer is None:
        return None
    return ("true" if answer else "false") if isinstance(answer, bool) else answer


async def _graded(
    session: AsyncSession, llm: LLM, user_id: str, quiz_id: str, data: AttemptIn
) -> tuple[list[Question], list[QuestionResult]]:
    quiz = await get_quiz(session, user_id, quiz_id)
    if quiz.status != QuizStatus.READY:
        raise Conflict(
            "This quiz is still being generated."
            if quiz.status == QuizStatus.GENERATING
            else "This quiz could not be generated, so it cannot be taken."
        )
    questions = await _questions(session, quiz.id)
    answers = _checked_answers(questions, data.answers)
    verdicts = await _grade(llm, questions, answers)
    sources = await _sources(session, questions)
    results = [
        QuestionResult(
            question_id=q.id,
            question=q.prompt,
            topic=q.topic,
            correct=ok,
            your_answer=_shown(answers.get(q.id)),
            expected_answer=q.answer,
            explanation=q.explanation,
            source=sources[q.id],
        )
        for q, ok in zip(questions, verdicts, strict=True)
    ]
    return questions, results


async def submit_attempt(
    db: Database, llm: LLM, user_id: str, quiz_id: str, data: AttemptIn
) -> AttemptOut:
    """Grade the answers (unanswered questions count as wrong), store the attempt, and
    reschedule the cards on what was missed.

    Grading may ask the model, so it runs on a read session; only the short write that
    follows takes the database's write lock.
    """
    async with db.read_session() as session:
        questions, results = await _graded(session, llm, user_id, quiz_id, data)
    correct = sum(r.correct for r in results)
    missed = [q for q, r in zip(questions, results, strict=True) if not r.correct]
    async with db.session() as session:
        if await session.get(Quiz, quiz_id) is None:
            raise NotFound("Quiz not found.")  # deleted while grading
        attempt = Attempt(
            quiz_id=quiz_id,
            user_id=user_id,
            score=round(correct / len(results), 4) if results else 0.0,
            correct=correct,
            total=len(results),
            results=[r.model_dump(mode="json") for r in results],
        )
        session.add(attempt)
        await session.flush()
        answered = sum(r.your_answer is not None for r in results)
        await events.record(
            session,
            user_id,
            "quiz_attempt",
            minutes=answered * events.QUESTION_MINUTES,
            details={
                "quiz_id": quiz_id,
                "attempt_id": attempt.id,
                "correct": correct,
                "total": len(results),
            },
        )
        rescheduled = await forget_related(
            session,
            user_id,
            chunk_ids={q.chunk_id for q in missed if q.chunk_id},
            topics={q.topic for q in missed},
        )
        await session.flush()
        out = AttemptOut.model_validate(attempt)
    return out.model_copy(update={"cards_to_review": rescheduled})


async def list_attempts(session: AsyncSession, user_id: str, quiz_id: str) -> list[AttemptOut]:
    quiz = await get_quiz(session, user_id, quiz_id)
    rows = await session.scalars(
        select(Attempt).where(Attempt.quiz_id == quiz.id).order_by(Attempt.id.desc())
    )
    return [AttemptOut.model_validate(a) for a in rows]
