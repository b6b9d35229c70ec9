"""The ASGI app: `uvicorn api.main:app`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from api.errors import document_unparsable_bodies, install_error_handlers
from api.fastpath import JobPollFastPath
from api.middleware import BodySizeLimit
from api.observability import HttpMetrics, RequestContext
from api.routers import (
    admin,
    auth,
    chat,
    flashcards,
    health,
    jobs,
    materials,
    me,
    metrics,
    paths,
    progress,
    quizzes,
    search,
)
from api.text_fastpath import TextMaterialFastPath
from shared.config import Settings, get_settings
from shared.logging import configure_logging
from shared.resources import Resources

MAX_JSON_BODY_BYTES = 10 * 1024 * 1024
MULTIPART_OVERHEAD_BYTES = 1024 * 1024


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.resources = await Resources.open(settings)
        try:
            yield
        finally:
            await app.state.resources.close()

    app = FastAPI(
        title="Brainwave API",
        version="0.1.0",
        summary="Backend of the Brainwave AI study companion.",
        lifespan=lifespan,
    )
    # The last one added runs first: request id and metrics, CORS, then the body limit,
    # then the fast paths of the job poll and of the text note.
    app.add_middleware(TextMaterialFastPath)
    app.add_middleware(JobPollFastPath)
    app.add_middleware(
        BodySizeLimit,
        max_bytes=MAX_JSON_BODY_BYTES,
        path_limits={"/api/materials": settings.max_upload_bytes + MULTIPART_OVERHEAD_BYTES},
    )
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PATCH", "DELETE", "OPTIONS"],
            allow_headers=[
                "Authorization",
                "Content-Type",
                "X-API-Key",
                "Last-Event-ID",
                "X-Request-ID",
            ],
            expose_headers=["X-Request-ID", "Retry-After"],
            max_age=600,
        )
    app.state.http_metrics = HttpMetrics()
    app.add_middleware(RequestContext, metrics=app.state.http_metrics)
    install_error_handlers(app)
    modules = (
        health,
        auth,
        jobs,
        materials,
        search,
        chat,
        flashcards,
        quizzes,
        paths,
        progress,
        me,
        admin,
        metrics,
    )
    for module in modules:
        app.include_router(module.router)
    document_unparsable_bodies(app)
    return app


app = create_app()
