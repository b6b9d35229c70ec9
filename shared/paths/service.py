"""Learning paths: creation (row + generation job), reads with each module's status and
mastery, completing modules, the next step and the exam plan (services flush; the caller
commits)."""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.errors import Conflict, InvalidInput, NotFound
from shared.flashcards.models import Card
from shared.jobs import service as jobs
from shared.jobs.models import Job
from shared.materials.service import require_owned
from shared.pagination import Page, newest_first
from shared.paths import guidance
from shared.paths.models import LearningPath, PathModule, PathStatus
from shared.paths.schemas import ModuleOut, NextStep, PathDetail, PathIn, PathOut
from shared.progress import events, mastery

GENERATE_PATH = "generate_path"


async def create_path(
    session: AsyncSession, user_id: str, data: PathIn
) -> tuple[LearningPath, Job]:
    """A path and its queued `generate_path` job (enqueued after commit)."""
    material_ids = list(dict.fromkeys(data.material_ids))
    await require_owned(session, user_id, material_ids)
    if data.exam_date is not None:
        today = events.local_day(datetime.now(UTC), await events.user_zone(session, user_id))
        if data.exam_date < today:
            raise InvalidInput("The exam date is in the past.", details=str(data.exam_date))
    path = LearningPath(
        user_id=user_id,
        title=data.goal[:200],
        goal=data.goal,
        material_ids=material_ids,
        level=data.level,
        minutes_per_day=data.minutes_per_day,
        exam_date=data.exam_date,
        status=PathStatus.GENERATING,
    )
    session.add(path)
    await session.flush()
    job = jobs.create_job(session, user_id, GENERATE_PATH, {"path_id": path.id})
    await session.flush()
    path.job_id = job.id
    return path, job


async def get_path(session: AsyncSession, user_id: str, path_id: str) -> LearningPath:
    path = await session.scalar(
        select(LearningPath).where(LearningPath.id == path_id, LearningPath.user_id == user_id)
    )
    if path is None:
        raise NotFound("Learning path not found.")
    return path


async def _modules(session: AsyncSession, path_id: str) -> list[PathModule]:
    query = select(PathModule).where(PathModule.path_id == path_id)
    return list(await session.scalars(query.order_by(PathModule.position)))


async def _states(
    session: AsyncSession, user_id: str, path_id: str, now: datetime
) -> list[guidance.ModuleState]:
    modules = await _modules(session, path_id)
    answered = await mastery.answers(session, user_id)
    memories = await mastery.cards(session, user_id)
    return guidance.module_states(modules, answered, memories, now)


def module_out(state: guidance.ModuleState) -> ModuleOut:
    m = state.module
    return ModuleOut(
        id=m.id,
        position=m.position,
        title=m.title,
        objectives=m.objectives,
        chunk_ids=m.chunk_ids,
        material_ids=m.material_ids,
        topics=m.topics,
        minutes=m.minutes,
        completed_at=m.completed_at,
        status=state.status,
        mastery=state.evidence.mastery,
        quiz_accuracy=state.evidence.quiz_accuracy,
        mean_recall=state.evidence.mean_recall,
    )


async def path_detail(session: AsyncSession, user_id: str, path_id: str) -> PathDetail:
    """The path with its modules in order, each with its status and mastery now."""
    path = await get_path(session, user_id, path_id)
    states = await _states(session, user_id, path.id, datetime.now(UTC))
    return PathDetail(
        **PathOut.model_validate(path).model_dump(), modules=[module_out(s) for s in states]
    )


async def list_paths(
    session: AsyncSession, user_id: str, *, limit: int, cursor: str | None
) -> Page[PathOut]:
    query = select(LearningPath).where(LearningPath.user_id == user_id)
    page = await newest_first(session, query, LearningPath.id, limit=limit, cursor=cursor)
    return page.validated(PathOut)


async def delete_path(session: AsyncSession, user_id: str, path_id: str) -> str | None:
    """Delete the path with its modules; return its job id (to cancel)."""
    path = await get_path(session, user_id, path_id)
    await session.delete(path)
    await session.flush()
    return path.job_id


async def complete_module(
    session: AsyncSession, user_id: str, path_id: str, module_id: str
) -> ModuleOut:
    """Mark the module completed (once: completing it again changes nothing) and record
    a `module_completed` study event the first time."""
    path = await get_path(session, user_id, path_id)
    module = await session.scalar(
        select(PathModule).where(PathModule.id == module_id, PathModule.path_id == path.id)
    )
    if module is None:
        raise NotFound("Module not found.")
    if module.completed_at is None:
        module.completed_at = datetime.now(UTC)
        await events.record(
            session,
            user_id,
            "module_completed",
            minutes=0,
            details={"path_id": path.id, "module_id": module.id},
        )
        await session.flush()
    states = await _states(session, user_id, path.id, datetime.now(UTC))
    return module_out(next(s for s in states if s.module.id == module.id))


async def _due(
    session: AsyncSession, user_id: str, now: datetime
) -> list[tuple[str | None, str | None]]:
    rows = await session.execute(
        select(Card.chunk_id, Card.topic).where(Card.user_id == user_id, Card.due_at <= now)
    )
    return [(r.chunk_id, r.topic) for r in rows]


async def next_step(session: AsyncSession, user_id: str, path_id: str) -> NextStep:
    """What to study now (see `guidance.choose`), with the exam plan when there is one."""
    path = await get_path(session, user_id, path_id)
    if path.status != PathStatus.READY:
        raise Conflict(
            "This learning path is still being generated."
            if path.status == PathStatus.GENERATING
            else "This learning path could not be generated."
        )
    now = datetime.now(UTC)
    states = await _states(session, user_id, path.id, now)
    step = guidance.choose(states, await _due(session, user_id, now))
    if path.exam_date is None:
        return step
    today = events.local_day(now, await events.user_zone(session, user_id))
    return step.model_copy(update={"plan": guidance.plan(path, states, today)})


async def next_exam_date(session: AsyncSession, user_id: str, today: date) -> date | None:
    """The nearest exam date on or after `today` across the learner's paths."""
    result: date | None = await session.scalar(
        select(func.min(LearningPath.exam_date)).where(
            LearningPath.user_id == user_id, LearningPath.exam_date >= today
        )
    )
    return result
