"""The poll path's fast paths give the same answers as the full checks they skip."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastrouter_async import FastRouterSession
from fastrouter_async._http_parts import FixedHeaders
from fastrouter_async._untrusted import (
    MAX_JSON_DEPTH,
    UnreadableJSON,
    _brackets_nest_within,
    _few_brackets,
    loads,
)
from fastrouter_async.testing import FastRouterSimulator, JobPlan

from .conftest import API_KEY, SessionFactory

_SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text()
_JSON = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=40,
)
_BRACKETY = st.text(alphabet='[]{}"\\a,:1 ', max_size=80)


def _depth(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max((_depth(item) for item in value), default=0)
    if isinstance(value, dict):
        return 1 + max((_depth(item) for item in value.values()), default=0)
    return 0


@settings(max_examples=300, deadline=None)
@given(value=_JSON, max_depth=st.integers(min_value=0, max_value=8))
def test_few_brackets_never_accepts_json_the_full_check_refuses(value: Any, max_depth: int) -> None:
    """For JSON text, the bracket count accepts only what the full nesting check accepts, and nothing too deep."""
    text = json.dumps(value)
    if _few_brackets(text, max_depth):
        assert _brackets_nest_within(text, max_depth)
        assert _depth(json.loads(text)) <= max_depth


@settings(max_examples=300, deadline=None)
@given(text=_BRACKETY, max_depth=st.integers(min_value=0, max_value=6))
def test_few_brackets_accepts_non_json_only_when_json_refuses_it(text: str, max_depth: int) -> None:
    """For any text, what the count accepts and the full check refuses is not JSON: loads refuses it all the same."""
    if _few_brackets(text, max_depth) and not _brackets_nest_within(text, max_depth):
        with pytest.raises(ValueError):  # any decode error: json.s own
            json.loads(text)


@settings(max_examples=300, deadline=None)
@given(value=_JSON)
def test_loads_decodes_as_json_loads(value: Any) -> None:
    """The decoder built once reads every JSON value as json.loads does."""
    raw = json.dumps(value).encode()
    if _depth(value) <= MAX_JSON_DEPTH:
        assert loads(raw) == json.loads(raw)


def test_loads_still_refuses_deep_nesting_and_bounds_numbers() -> None:
    """Nesting beyond MAX_JSON_DEPTH is refused, and a 41-digit integer is read as a float, as before."""
    deep = ("[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1)).encode()
    with pytest.raises(UnreadableJSON):
        loads(deep)
    assert loads(("[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH).encode()) is not None
    assert loads(b'{"n": ' + b"9" * 41 + b"}") == {"n": float("9" * 41)}
    assert loads(b'{"n": ' + b"9" * 40 + b"}") == {"n": int("9" * 40)}


async def test_an_unchanged_running_answer_keeps_the_status_kept(
    make_session: SessionFactory, sim: FastRouterSimulator
) -> None:
    """Equal running answers keep one payload-free copy on the job; status() still returns each answer whole."""
    sim.default_plan = JobPlan(polls=4)
    session: FastRouterSession = make_session()
    job = await session.submit(model="google/veo3", prompt="p")
    first = await job.status()
    kept = job.last_status
    second = await job.status()
    assert first.payload is not None
    assert second.payload is not None
    assert kept is not None
    assert kept.payload is None
    assert job.last_status is kept
    assert kept == second
    final = await job.result()
    assert final.task_id == job.task_id
    assert job.last_status is not kept
    assert job.last_status is not None
    assert job.last_status.done


def test_headers_built_once_hide_the_key_in_their_repr() -> None:
    """The prebuilt request headers (sent as a multidict, unconverted) never show the credential in a repr."""
    headers = FixedHeaders({"Accept": "application/json", "Authorization": f"Bearer {API_KEY}"})
    assert API_KEY not in repr(headers)
    assert API_KEY not in str(headers)
    assert headers["authorization"] == f"Bearer {API_KEY}"
