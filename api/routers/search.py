from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import ReadSessionDep, ResourcesDep, UserId
from api.errors import responses
from shared.fields import Id
from shared.materials.schemas import SearchResults
from shared.materials.search import search as search_chunks

router = APIRouter(prefix="/api", tags=["search"])


@router.get("/search", responses=responses(401, 422, 503))
async def search(
    user_id: UserId,
    session: ReadSessionDep,
    resources: ResourcesDep,
    q: Annotated[str, Query(min_length=1, max_length=1000)],
    material_ids: Annotated[list[Id], Query(max_length=100, default_factory=list)],
    limit: Annotated[int, Query(ge=1, le=50)] = 10,
) -> SearchResults:
    """Passages of the caller's own materials closest to the query, best first."""
    hits = await search_chunks(
        session,
        resources.store,
        resources.embedder,
        user_id,
        q,
        limit=limit,
        material_ids=material_ids,
    )
    return SearchResults(query=q, hits=hits)
