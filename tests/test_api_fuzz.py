"""Schema-driven fuzzing of the HTTP API: no request, valid or not, gets a 5xx.

schemathesis reads the app's own OpenAPI document and sends, for every operation, requests that follow it
(positive) and requests that break it (negative: wrong types, missing and extra fields, out-of-range
numbers, odd strings, NUL bytes), with a valid key and without one. The app runs over a real SQLite store,
the real model and the fake Messages API, so a turn goes all the way through. Oversized bodies and
non-JSON bodies are covered in tests/test_api.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from memory.api import create_app
from memory.config import get_settings
from tests.messages_api import API_KEY, MessagesAPI
from tests.test_api import API_KEYS, AUTH_A

EXAMPLES = 25  # per operation and mode: 13 operations x 2 modes, about 40 s on this machine


@pytest.fixture(scope="module")
def fuzzed_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    with MessagesAPI() as messages_api:
        app_settings = get_settings(
            store_url=f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'fuzz.db'}",
            session_store_url="memory://",
            anthropic_api_key=API_KEY,
            anthropic_base_url=messages_api.url,
            api_keys=API_KEYS,
            extraction="rules",
            claude_max_retries=0,
        )
        yield create_app(app_settings)


@pytest.fixture(scope="module")
def api_schema(fuzzed_app: object) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_asgi("/openapi.json", fuzzed_app)


def fuzz_cases() -> list[Any]:
    """Every operation of the spec (read from an app that serves no request: create_app connects nothing),
    with valid inputs, and with invalid ones where it takes any."""
    spec = create_app(get_settings(api_keys=API_KEYS)).openapi()
    cases = []
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            label = f"{method.upper()} {path}"
            cases.append(pytest.param(label, GenerationMode.POSITIVE, id=f"{label}-valid"))
            if operation.get("parameters") or operation.get("requestBody"):
                cases.append(pytest.param(label, GenerationMode.NEGATIVE, id=f"{label}-invalid"))
    return cases


@pytest.mark.parametrize("label, mode", fuzz_cases())
def test_no_input_gets_a_server_error(api_schema: schemathesis.BaseSchema, label: str, mode: GenerationMode) -> None:
    operation = api_schema.find_operation_by_label(label)
    assert operation is not None, label

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
    )
    def fuzz(case: schemathesis.Case) -> None:
        # the caller's own key, always: schemathesis would otherwise send made-up ones, and every case is a 401
        headers = {name: value for name, value in (case.headers or {}).items() if name.lower() != "authorization"}
        headers.update(AUTH_A)
        response = case.call(headers=headers)
        assert response.status_code < 500, (
            f"{case.method} {case.formatted_path}: {response.status_code} {response.text}"
        )
        if response.status_code != 204:
            assert response.headers["content-type"][0].startswith("application/json"), response.headers

    fuzz()


def test_every_operation_is_fuzzed() -> None:
    assert len({case.values[0] for case in fuzz_cases()}) >= 12
