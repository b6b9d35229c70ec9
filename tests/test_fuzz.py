"""The whole OpenAPI, fuzzed by schemathesis against the in-process app, as a signed-in
learner: no answer may be a 5xx, and every answer must match what the OpenAPI documents
(status code, content type, headers, body schema).

Bounded for `make test` (FUZZ_EXAMPLES examples per operation, 15 by default); a longer
run: `FUZZ_EXAMPLES=500 .venv/bin/python -m pytest tests/test_fuzz.py`."""

from __future__ import annotations

import os
import uuid
import zlib
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig
from schemathesis.python.asgi import shutdown_lifespans

from api.main import create_app
from shared.config import Settings
from shared.fields import NOT_BLANK
from tests.conftest import (
    ON_POSTGRES,
    Account,
    _alembic_upgrade,
    assert_error,
    fresh_database,
    process_env,
)

FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "15"))
PASSWORD = "correct horse battery staple"


def _call(schema: Any, method: str, path: str, **case: Any) -> Any:
    response = schema[path][method].Case(**case).call()
    assert response.status_code < 300, f"{method} {path}: {response.status_code} {response.text}"
    return response.json() if response.content else None


def _seed(schema: Any) -> tuple[str, dict[str, str]]:
    """A real learner with one of each resource: their token and the resources' ids, so the
    fuzzer reaches past 404 on the routes that take an id."""
    email = f"fuzz-{uuid.uuid4().hex[:12]}@example.com"
    _call(schema, "POST", "/api/auth/register", body={"email": email, "password": PASSWORD})
    login = schema["/api/auth/login"]["POST"].Case(
        body={"username": email, "password": PASSWORD},
        media_type="application/x-www-form-urlencoded",
    )
    token = login.call().json()["access_token"]
    auth = {"Authorization": f"Bearer {token}"}
    note = {"title": "Cells", "text": "The mitochondria is the powerhouse of the cell."}
    created = _call(schema, "POST", "/api/materials/text", body=note, headers=auth)
    chat = _call(schema, "POST", "/api/chat/sessions", body={"title": "Biology"}, headers=auth)
    deck = _call(schema, "POST", "/api/decks", body={"title": "Biology"}, headers=auth)
    card = _call(
        schema,
        "POST",
        "/api/decks/{deck_id}/cards",
        path_parameters={"deck_id": deck["id"]},
        body={"front": "Powerhouse of the cell?", "back": "The mitochondria"},
        headers=auth,
    )
    key = _call(schema, "POST", "/api/auth/api-keys", body={"name": "fuzz"}, headers=auth)
    ids = {
        "material_id": created["material"]["id"],
        "job_id": created["job"]["id"],
        "session_id": chat["id"],
        "deck_id": deck["id"],
        "card_id": card["id"],
        "key_id": key["id"],
    }
    return token, ids


@pytest.fixture(scope="module")
def fuzz_app(
    migrated: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Any, str, dict[str, str]]]:
    """The app on its own database, data dir and queue, with rate limits no fuzzer reaches
    (the session's settings already carry them; tests/test_rate_limits.py tests 429s)."""
    with fresh_database(migrated=True) as database_url:
        fuzz_settings = migrated.model_copy(
            update={
                "data_dir": tmp_path_factory.mktemp("fuzz"),
                "database_url": database_url,
                "queue_name": f"brainwave-fuzz:{uuid.uuid4().hex[:8]}",
            }
        )
        if not ON_POSTGRES:
            _alembic_upgrade(process_env(fuzz_settings))
        app = create_app(fuzz_settings)
        try:
            schema = schemathesis.openapi.from_asgi("/openapi.json", app)
            token, ids = _seed(schema)
            yield app, token, ids
        finally:
            shutdown_lifespans()  # the app's lifespan runs in schemathesis' event loop


@pytest.fixture(scope="module")
def target(fuzz_app: tuple[Any, str, dict[str, str]]) -> tuple[Any, dict[str, str], dict[str, str]]:
    """The app to call, the learner's Authorization header and the real ids."""
    app, token, ids = fuzz_app
    return app, {"Authorization": f"Bearer {token}"}, ids


# Schema-valid requests the API rightly refuses for what no JSON Schema can say: the bytes
# of an upload or of a CSV are of no kind it reads; a link's site is inside a private
# network (or is no site name at all); an exam date is already past ("past" moves daily).
# Only these statuses, only on these operations, count as accepting valid data.
ACCEPTED = ["2xx", "3xx", "401", "403", "404", "409", "429", "5xx"]  # schemathesis' default
REFUSED_FOR_CONTENT = {
    ("POST", "/api/materials"): "415",
    ("POST", "/api/decks/import"): "422",
    ("POST", "/api/materials/url"): "422",
    ("POST", "/api/learning-paths"): "422",
}
OPERATIONS = [
    {
        "include-name": f"{method} {path}",  # one filter: several include-* would be ORed
        "checks": {"positive_data_acceptance": {"expected-statuses": [*ACCEPTED, status]}},
    }
    for (method, path), status in REFUSED_FOR_CONTENT.items()
]
# A file part is bytes: whatever non-string schemathesis puts in `files` to break the
# schema (null, 0, {}) is sent as the text of a file, which is a valid upload.
OPERATIONS.append(
    {
        "include-name": "POST /api/materials",
        "checks": {"negative_data_rejection": {"enabled": False}},
    }
)

# The schema is the app's own OpenAPI, loaded at import so pytest shows one test per
# operation; the requests go to the fixture's app (its own database, in-process).
schema = schemathesis.openapi.from_dict(
    create_app().openapi(),
    config=SchemathesisConfig.from_dict(
        {"generation": {"max-examples": FUZZ_EXAMPLES}, "operations": OPERATIONS}
    ),
)


@schema.parametrize()
@settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_openapi_is_truthful(case: Any, target: tuple[Any, dict[str, str], dict[str, str]]) -> None:
    app, auth, real_ids = target
    # Half the cases (chosen by their content, so a failure replays) get the real ids.
    if case.path_parameters and zlib.crc32(repr(case.path_parameters).encode()) % 2:
        for name in case.path_parameters:
            if name in real_ids:
                case.path_parameters[name] = real_ids[name]
    case.call_and_validate(app=app, headers=auth)


# --- what the fuzzer found, pinned -----------------------------------------------------


async def test_unparsable_body_is_a_documented_400(
    client: httpx.AsyncClient, alice: Account
) -> None:
    """Bytes that are not UTF-8 JSON are refused by FastAPI before validation, with 400;
    every operation with a body lists it."""
    response = await client.post(
        "/api/materials/text",
        headers={**alice.headers, "content-type": "application/json"},
        content=b'{"title": "\xff"}',  # json.loads fails to decode, not to parse
    )
    assert_error(response, 400, "bad_request")
    paths = (await client.get("/openapi.json")).json()["paths"]
    for item in paths.values():
        for operation in item.values():
            assert ("400" in operation["responses"]) == ("requestBody" in operation), operation


async def test_405_allow_lists_every_method_of_the_path(
    client: httpx.AsyncClient, alice: Account
) -> None:
    response = await client.request("OPTIONS", "/api/materials/abc", headers=alice.headers)
    assert_error(response, 405, "method_not_allowed")
    assert response.headers["allow"] == "DELETE, GET"
    response = await client.put("/api/decks", headers=alice.headers)
    assert response.headers["allow"] == "GET, POST"
    response = await client.request("OPTIONS", "/api/materials/text", headers=alice.headers)
    assert response.headers["allow"] == "POST"  # not also /api/materials/{material_id}'s


async def test_the_schema_states_the_limits_the_api_enforces(
    client: httpx.AsyncClient, alice: Account
) -> None:
    """Cases 150- and 500-example runs found where the OpenAPI and the API disagreed."""
    h = alice.headers
    search = await client.get("/api/search", params={"q": "x", "material_ids": "false"}, headers=h)
    assert_error(search, 422)  # ids are 32 hex characters, and the schema says so
    unknown = {"title": "Bio", "material_ids": ["0" * 32]}
    assert_error(await client.post("/api/decks", json=unknown, headers=h), 404, "not_found")
    quiz = {"num_questions": True}  # JSON Schema's integer is not a boolean
    assert_error(await client.post("/api/quizzes", json=quiz, headers=h), 422)
    blank = {"title": "\x85\u3000"}  # white space to str.strip(), whatever \s means elsewhere
    assert_error(await client.post("/api/decks", json=blank, headers=h), 422)
    files = [("files", (f"{i}.txt", b"Cells divide.", "text/plain")) for i in range(21)]
    assert_error(await client.post("/api/materials", files=files, headers=h), 422)
    zone = {"timezone": "Mars/Olympus_Mons"}
    assert_error(await client.patch("/api/me/settings", json=zone, headers=h), 422)

    components = (await client.get("/openapi.json")).json()["components"]["schemas"]
    assert components["PathIn"]["properties"]["goal"]["pattern"] == NOT_BLANK
    zones = components["UserSettingsIn"]["properties"]["timezone"]["anyOf"][0]["enum"]
    assert "Europe/Paris" in zones and "Mars/Olympus_Mons" not in zones
    decks = (await client.get("/openapi.json")).json()["paths"]["/api/decks"]["post"]
    assert "404" in decks["responses"]


def _keys(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield key
            yield from _keys(value)
    elif isinstance(node, list):
        for item in node:
            yield from _keys(item)


async def test_the_schema_has_no_bound_json_schema_does_not_know(
    client: httpx.AsyncClient,
) -> None:
    """pydantic writes a Field's bounds on an optional, validated field as "ge"/"le": a
    client (and the fuzzer) then reads the field as unbounded, e.g. a negative review
    duration that the API refuses (found by a 500-example run)."""
    schemas = (await client.get("/openapi.json")).json()["components"]["schemas"]
    assert not {"ge", "le", "gt", "lt"} & set(_keys(schemas))
    duration = schemas["ReviewIn"]["properties"]["duration_ms"]["anyOf"][0]
    assert (duration["minimum"], duration["maximum"]) == (0, 24 * 3600 * 1000)
