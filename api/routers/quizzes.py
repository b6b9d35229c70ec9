"""Quizzes: generated from the learner's materials by a job, taken, graded."""

from __future__ import annotations

from fastapi import APIRouter, Response, status
from fastapi.responses import JSONResponse

from api.deps import Cursor, Limit, ReadSessionDep, ResourcesDep, SessionDep, UserId
from api.errors import responses
from shared.jobs import service as jobs
from shared.jobs.schemas import JobOut
from shared.pagination import DEFAULT_LIMIT, Page
from shared.quizzes import service as quizzes
from shared.quizzes.schemas import (
    AttemptIn,
    AttemptOut,
    QuizCreated,
    QuizDetail,
    QuizIn,
    QuizOut,
)

router = APIRouter(prefix="/api/quizzes", tags=["quizzes"])


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    responses=responses(401, 404, 422),
    response_model=QuizCreated,
)
async def create_quiz(
    data: QuizIn, user_id: UserId, session: SessionDep, resources: ResourcesDep
) -> JSONResponse:
    """A quiz whose questions a `generate_quiz` job writes; poll the job, then GET the quiz."""
    quiz, job = await quizzes.create_quiz(session, user_id, data)
    await jobs.commit_and_enqueue(session, resources.redis)
    created = QuizCreated(quiz=QuizOut.model_validate(quiz), job=JobOut.model_validate(job))
    return JSONResponse(created.model_dump(mode="json"), status_code=status.HTTP_202_ACCEPTED)


@router.get("", responses=responses(401, 422))
async def list_quizzes(
    user_id: UserId, session: ReadSessionDep, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
) -> Page[QuizOut]:
    return await quizzes.list_quizzes(session, user_id, limit=limit, cursor=cursor)


@router.get("/{quiz_id}", responses=responses(401, 404))
async def get_quiz(quiz_id: str, user_id: UserId, session: ReadSessionDep) -> QuizDetail:
    """The quiz and its questions — without answers or explanations."""
    return await quizzes.quiz_detail(session, user_id, quiz_id)


@router.delete("/{quiz_id}", status_code=status.HTTP_204_NO_CONTENT, responses=responses(401, 404))
async def delete_quiz(
    quiz_id: str, user_id: UserId, session: SessionDep, resources: ResourcesDep
) -> Response:
    """Remove the quiz with its attempts (and cancel its generation job)."""
    job_id = await quizzes.delete_quiz(session, user_id, quiz_id)
    await jobs.commit_cancelling(session, resources.redis, user_id, job_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{quiz_id}/attempts",
    status_code=status.HTTP_201_CREATED,
    responses=responses(401, 404, 409, 422),
)
async def submit_attempt(
    quiz_id: str, data: AttemptIn, user_id: UserId, resources: ResourcesDep
) -> AttemptOut:
    """Grade my answers: the score, and per question whether I was right, the expected
    answer, an explanation and where in my material it comes from. Missed questions
    reschedule my flashcards on the same passages or topics as forgotten."""
    return await quizzes.submit_attempt(resources.db, resources.llm, user_id, quiz_id, data)


@router.get("/{quiz_id}/attempts", responses=responses(401, 404))
async def list_attempts(quiz_id: str, user_id: UserId, session: ReadSessionDep) -> list[AttemptOut]:
    """My attempts at this quiz, newest first."""
    return await quizzes.list_attempts(session, user_id, quiz_id)
