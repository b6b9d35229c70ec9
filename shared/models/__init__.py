"""Imports every ORM model so that Alembic and relationships see the whole schema."""

from shared.auth.models import ApiKey, RefreshToken, User
from shared.chat.models import ChatMessage, ChatSession
from shared.db.base import Base
from shared.flashcards.models import Card, Deck, Review
from shared.jobs.models import Job
from shared.materials.models import Chunk, Material
from shared.paths.models import LearningPath, PathModule
from shared.progress.models import StudyEvent
from shared.quizzes.models import Attempt, Question, Quiz

__all__ = [
    "ApiKey",
    "Attempt",
    "Base",
    "Card",
    "ChatMessage",
    "ChatSession",
    "Chunk",
    "Deck",
    "Job",
    "LearningPath",
    "Material",
    "PathModule",
    "Question",
    "Quiz",
    "RefreshToken",
    "Review",
    "StudyEvent",
    "User",
]
