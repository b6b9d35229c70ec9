"""Choose the LLM and the embedder from settings.

`auto` picks Gemini when a Gemini key is set, else the OpenAI-compatible provider when
`openai_base_url` is set (for embeddings: and `openai_embedding_model`), else offline.
A provider named explicitly but not configured is a startup error, not a silent fallback.
"""

from __future__ import annotations

from typing import Literal

from shared.clients.embeddings import Embedder, HashingEmbedder
from shared.clients.llm.base import LLM
from shared.clients.llm.gemini import GeminiEmbedder, GeminiLLM
from shared.clients.llm.offline import OfflineLLM
from shared.clients.llm.openai_compat import OpenAICompatEmbedder, OpenAICompatLLM
from shared.config import Settings

Provider = Literal["gemini", "openai", "offline"]


def llm_provider(settings: Settings) -> Provider:
    if settings.llm_provider != "auto":
        return settings.llm_provider
    if settings.gemini_api_key:
        return "gemini"
    return "openai" if settings.openai_base_url else "offline"


def embedding_provider(settings: Settings) -> Provider:
    if settings.embedding_provider != "auto":
        return settings.embedding_provider
    if settings.gemini_api_key:
        return "gemini"
    if settings.openai_base_url and settings.openai_embedding_model:
        return "openai"
    return "offline"


def _require(value: str, name: str, provider: str) -> str:
    if not value:
        raise ValueError(f"{name} must be set to use the {provider} provider")
    return value


def build_llm(settings: Settings) -> LLM:
    """The configured LLM. Build it at startup and `await llm.aclose()` at shutdown."""
    timeout = settings.provider_timeout_seconds
    match llm_provider(settings):
        case "gemini":
            return GeminiLLM(
                api_key=_require(settings.gemini_api_key, "GEMINI_API_KEY", "gemini"),
                model=_require(settings.gemini_model, "GEMINI_MODEL", "gemini"),
                base_url=settings.gemini_base_url,
                timeout=timeout,
            )
        case "openai":
            return OpenAICompatLLM(
                base_url=settings.openai_base_url,
                api_key=settings.openai_api_key,
                model=_require(settings.openai_model, "OPENAI_MODEL", "openai"),
                timeout=timeout,
            )
        case _:
            return OfflineLLM()


def build_embedder(settings: Settings) -> Embedder:
    """The configured embedder; its `model_id` names the model and dimension."""
    timeout = settings.provider_timeout_seconds
    dimension = settings.embedding_dim
    match embedding_provider(settings):
        case "gemini":
            return GeminiEmbedder(
                api_key=_require(settings.gemini_api_key, "GEMINI_API_KEY", "gemini"),
                model=_require(settings.gemini_embedding_model, "GEMINI_EMBEDDING_MODEL", "gemini"),
                dimension=dimension,
                base_url=settings.gemini_base_url,
                timeout=timeout,
            )
        case "openai":
            return OpenAICompatEmbedder(
                base_url=settings.openai_base_url,
                api_key=settings.openai_api_key,
                model=_require(settings.openai_embedding_model, "OPENAI_EMBEDDING_MODEL", "openai"),
                dimension=dimension,
                timeout=timeout,
            )
        case _:
            return HashingEmbedder(dimension)
