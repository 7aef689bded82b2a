"""Schemathesis against the server's own OpenAPI spec, on the tiny model: for every operation, bodies,
paths and queries that fit the spec (positive) and that break it (negative) never get a 5xx, and
every status the server answers is one the spec declares. Bounded: a few dozen cases per operation.

Schemathesis' pytest plugin does not run under pytest 9 yet, so its strategies are driven by
Hypothesis directly."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error, status_code_conformance
from test_engine import backend, hf, model  # noqa: F401
from test_server_api import Live, auth, card_file, live, upload  # noqa: F401

OPERATIONS = [
    ("POST", "/v1/chat/completions"),
    ("POST", "/v1/completions"),
    ("GET", "/v1/models"),
    ("GET", "/v1/cards"),
    ("POST", "/v1/cards"),
    ("GET", "/v1/cards/{card_id}"),
    ("GET", "/v1/cards/{card_id}/file"),
    ("PATCH", "/v1/cards/{card_id}"),
    ("DELETE", "/v1/cards/{card_id}"),
    ("GET", "/health"),
    ("GET", "/metrics"),
]
# those with a body or a typed query parameter: any string is a valid path parameter
BREAKABLE = {
    ("POST", "/v1/chat/completions"),
    ("POST", "/v1/completions"),
    ("POST", "/v1/cards"),
    ("PATCH", "/v1/cards/{card_id}"),
}


@pytest.fixture(scope="module")
def api_schema(live: Live, tmp_path_factory: Any) -> Any:  # noqa: F811
    with live.client() as c:  # a card to find, so not every card id is a 404
        upload(c, card_file(live.engine.base, tmp_path_factory.mktemp("cards"), "fuzzed", steer=True))
    return schemathesis.openapi.from_dict(live.app.openapi())


def test_every_operation_is_fuzzed(api_schema: Any) -> None:
    spec = {
        (method.upper(), path) for path, item in api_schema.raw_schema["paths"].items() for method in item
    }
    assert spec == set(OPERATIONS)


CASES = [(m, p, GenerationMode.POSITIVE) for m, p in OPERATIONS] + [
    (m, p, GenerationMode.NEGATIVE) for m, p in OPERATIONS if (m, p) in BREAKABLE
]


@pytest.mark.parametrize(("method", "path", "mode"), CASES, ids=[f"{m} {p} {g.value}" for m, p, g in CASES])
def test_no_input_makes_the_server_fail(
    api_schema: Any,
    live: Live,  # noqa: F811
    method: str,
    path: str,
    mode: GenerationMode,
) -> None:
    operation = api_schema[path][method]
    statuses: Counter[int] = Counter()

    # a random `model` is nearly always a 404: most cases name one that exists, so they generate
    @given(case=operation.as_strategy(generation_mode=mode), name=st.sampled_from(["base", "fuzzed", None]))
    @settings(
        max_examples=25,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any, name: str | None) -> None:
        if name is not None and isinstance(case.body, dict) and "model" in case.body:
            case.body["model"] = name
            case.body.pop("cards", None)
        response = case.call(base_url=live.url, headers=auth("alice"), timeout=30)
        statuses[response.status_code] += 1
        case.validate_response(response, checks=[not_a_server_error, status_code_conformance])

    run()
    print(f"{method} {path} {mode.value}: {dict(sorted(statuses.items()))}")  # shown with -s
    assert live.app.state.server.scheduler.stats.failed == 0
