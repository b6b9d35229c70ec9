"""Where a learner stands on a path: each module's status and mastery, what to do next,
and — with an exam date — a day-by-day plan. Pure functions over loaded evidence."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from shared.paths.models import LearningPath, PathModule
from shared.paths.schemas import ModuleStatus, NextStep, Plan, PlanDay, PlanModule
from shared.progress.mastery import MASTERED, Answer, CardMemory, Evidence, evidence_for

WEAK = 0.6  # recent quiz accuracy below this asks for a re-quiz


@dataclass(frozen=True, slots=True)
class ModuleState:
    module: PathModule
    status: ModuleStatus
    evidence: Evidence

    def covers(self, chunk_id: str | None, topic: str | None) -> bool:
        return (chunk_id is not None and chunk_id in self.module.chunk_ids) or (
            topic is not None and topic.lower() in {t.lower() for t in self.module.topics}
        )


def status_of(*, mastery: float, unlocked: bool, completed: bool, evidence: bool) -> ModuleStatus:
    """A module's status:

    - `mastered` when its mastery is at least `MASTERED` (0.8);
    - a module is *unlocked* when it is the first, or the one before it is completed
      (marked so by the learner) or mastered;
    - `in_progress` when it is unlocked and completed or studied (there is quiz or card
      evidence on it) — or locked but already studied: a learner may work ahead;
    - `available` when it is unlocked and untouched;
    - `locked` otherwise.
    """
    if mastery >= MASTERED:
        return "mastered"
    if (unlocked or evidence) and (completed or evidence):
        return "in_progress"
    return "available" if unlocked else "locked"


def module_states(
    modules: Sequence[PathModule],
    answered: Sequence[Answer],
    memories: Sequence[CardMemory],
    at: datetime,
) -> list[ModuleState]:
    states: list[ModuleState] = []
    for module in modules:
        evidence = evidence_for(
            answered, memories, chunk_ids=set(module.chunk_ids), topics=set(module.topics), at=at
        )
        previous = states[-1] if states else None
        unlocked = previous is None or (
            previous.module.completed_at is not None or previous.status == "mastered"
        )
        status = status_of(
            mastery=evidence.mastery,
            unlocked=unlocked,
            completed=module.completed_at is not None,
            evidence=evidence.has_evidence,
        )
        states.append(ModuleState(module, status, evidence))
    return states


def weak_topic(states: Sequence[ModuleState]) -> tuple[ModuleState, str, float] | None:
    """The topic with the lowest recent quiz accuracy below `WEAK` (the earliest module
    on a tie), grouping each module's answers by their topic label."""
    worst: tuple[ModuleState, str, float] | None = None
    for state in states:
        groups: dict[str, list[Answer]] = {}
        for answer in state.evidence.answers:
            groups.setdefault(answer.topic.lower(), []).append(answer)
        for answers in groups.values():
            accuracy = Evidence(answers=answers).quiz_accuracy
            if accuracy is not None and accuracy < WEAK and (worst is None or accuracy < worst[2]):
                worst = (state, answers[0].topic, round(accuracy, 4))
    return worst


def choose(states: Sequence[ModuleState], due: Iterable[tuple[str | None, str | None]]) -> NextStep:
    """What to do now, in priority order: review due cards on the path, re-quiz a weak
    topic, continue the module in progress, start the next available one, practise a
    completed but unmastered one; done when all are mastered. A module the learner marked
    completed is not "continued" before new ones are started: they have moved on.
    `due` holds the (chunk id, topic) of each of the learner's due cards."""
    on_path = [(c, t) for c, t in due if any(s.covers(c, t) for s in states)]
    if on_path:
        first = next(s for s in states if any(s.covers(c, t) for c, t in on_path))
        return NextStep(
            action="review_cards",
            reason=f"{len(on_path)} flashcards on this path are due: review them first, "
            "before you forget them.",
            module_id=first.module.id,
            cards_due=len(on_path),
        )
    weak = weak_topic(states)
    if weak is not None:
        state, topic, accuracy = weak
        return NextStep(
            action="requiz_topic",
            reason=f"Your recent quiz accuracy on {topic} is {accuracy:.0%}, below "
            f"{WEAK:.0%}: study it again in “{state.module.title}” and take a quiz on it.",
            module_id=state.module.id,
            topic=topic,
            accuracy=accuracy,
        )
    current = next(
        (s for s in states if s.status == "in_progress" and s.module.completed_at is None), None
    )
    if current is not None:
        return NextStep(
            action="continue_module",
            reason=f"Continue “{current.module.title}”: it is not mastered yet "
            f"({current.evidence.mastery:.0%}).",
            module_id=current.module.id,
        )
    fresh = next((s for s in states if s.status == "available"), None)
    if fresh is not None:
        return NextStep(
            action="start_module",
            reason=f"Start the next module, “{fresh.module.title}”.",
            module_id=fresh.module.id,
        )
    pending = next((s for s in states if s.status != "mastered"), None)
    if pending is None:
        return NextStep(action="done", reason="Every module of this path is mastered.")
    return NextStep(
        action="continue_module",
        reason=f"“{pending.module.title}” is completed but not mastered yet "
        f"({pending.evidence.mastery:.0%}): practise it with a quiz or flashcards.",
        module_id=pending.module.id,
    )


def plan(path: LearningPath, states: Sequence[ModuleState], today: date) -> Plan | None:
    """The remaining modules fitted into the days before the exam.

    Study days run from today to the day before the exam; the last of them is kept for
    review when there are two or more. Each study day holds at most
    max(minutes per day, minutes needed per day), so everything fits; a module may span
    two days. Days with nothing to do are left out of the schedule."""
    if path.exam_date is None:
        return None
    remaining = [s.module for s in states if s.status != "mastered"]
    needed = sum(m.minutes for m in remaining)
    days_left = max(0, (path.exam_date - today).days)
    days = [today + timedelta(days=n) for n in range(max(1, days_left))]
    study_days = days[:-1] if len(days) > 1 else days
    per_day = math.ceil(needed / len(study_days))
    schedule = _fill(remaining, study_days, max(path.minutes_per_day, per_day))
    if len(days) > 1:
        schedule.append(
            PlanDay(date=days[-1], minutes=path.minutes_per_day, modules=[], review=True)
        )
    return Plan(
        exam_date=path.exam_date,
        days_left=days_left,
        minutes_needed=needed,
        minutes_per_day_needed=per_day,
        minutes_per_day=path.minutes_per_day,
        on_track=per_day <= path.minutes_per_day,
        schedule=schedule,
    )


def _fill(modules: Sequence[PathModule], days: Sequence[date], capacity: int) -> list[PlanDay]:
    queue = [(m, m.minutes) for m in modules]
    schedule: list[PlanDay] = []
    for day in days:
        free = capacity
        items: list[PlanModule] = []
        while queue and free > 0:
            module, left = queue[0]
            take = min(left, free)
            items.append(PlanModule(module_id=module.id, title=module.title, minutes=take))
            free -= take
            queue[0] = (module, left - take)
            if queue[0][1] == 0:
                queue.pop(0)
        if items:
            schedule.append(PlanDay(date=day, minutes=capacity - free, modules=items, review=False))
    return schedule
