"""AI providers: the LLM interface, its Gemini / OpenAI-compatible / offline providers,
and the embedders, chosen by settings (`build_llm`, `build_embedder`)."""

from shared.clients.llm.base import (
    LLM,
    AnswerRequest,
    JsonRequest,
    Passage,
    ProviderError,
    StreamEvent,
    TextDelta,
    Turn,
    TutorStyle,
    Usage,
)
from shared.clients.llm.factory import build_embedder, build_llm

__all__ = [
    "LLM",
    "AnswerRequest",
    "JsonRequest",
    "Passage",
    "ProviderError",
    "StreamEvent",
    "TextDelta",
    "Turn",
    "TutorStyle",
    "Usage",
    "build_embedder",
    "build_llm",
]
