"""Store URLs: what open_store() accepts, what it refuses, and that no password is ever shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from fastrouter_async import InvalidRequestError
from fastrouter_async._shared import InMemoryJobSlots
from fastrouter_async._stores import STORES_ALLOWED, open_store, parse_store_url, redact_url

KEY = "sk-live-0123456789abcdef0123"


def test_urls_of_the_three_stores_are_read() -> None:
    """memory:, sqlite:///absolute, sqlite:relative (percent-decoded) and redis(s):// URLs are read as such."""
    assert parse_store_url("memory:").kind == "memory"
    assert parse_store_url("MEMORY://").kind == "memory"
    assert parse_store_url("sqlite:///var/lib/app/shared.sqlite").path == Path("/var/lib/app/shared.sqlite")
    assert parse_store_url("sqlite:state/shared.sqlite").path == Path("state/shared.sqlite")
    assert parse_store_url("sqlite:///srv/my%20app/s.db").path == Path("/srv/my app/s.db")
    for url in (
        "redis://127.0.0.1:6379/0",
        "redis://cache",
        "rediss://user:pw@cache.internal:6380/2?ssl_cert_reqs=none",
    ):
        parsed = parse_store_url(url)
        assert (parsed.kind, parsed.redis_url) == ("redis", url)
    assert parse_store_url("rediss://user:pw@cache:6380/2?x=1").shown == "rediss://user:***@cache:6380/2?..."


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("memory:extra", "takes nothing"),
        ("sqlite:", "path of a file"),
        ("sqlite://", "path of a file"),
        ("sqlite:///", "path of a file"),
        ("sqlite:///var/lib/", "path of a file"),
        ("sqlite::memory:", "path of a file"),
        ("sqlite://otherhost/var/s.db", "no host name"),
        ("sqlite:///var/s.db?mode=ro", "without '?'"),
        ("redis://", "needs a host"),
        ("redis://:pw@/0", "needs a host"),
        ("redis://h:0/0", "port"),
        ("redis://u:pw@h:99999/0", "valid host and port"),
        ("redis://u:pw@h:abc/0", "valid host and port"),
        ("redis://h/db1", "database is a number"),
        ("postgres://u:pw@h/db", "unknown store"),
        ("file:///var/s.db", "unknown store"),
        ("/var/s.db", "a URL"),
        ("", "a URL"),
    ],
)
def test_bad_urls_are_refused_saying_what_is_allowed(url: str, says: str) -> None:
    """A bad store URL is an InvalidRequestError on field store, with the reason and every allowed form."""
    with pytest.raises(InvalidRequestError, match="store") as caught:
        parse_store_url(url)
    assert caught.value.field == "store"
    assert says in caught.value.allowed
    assert caught.value.allowed.endswith(STORES_ALLOWED)
    assert "pw" not in str(caught.value)
    assert caught.value.__cause__ is None  # a parser's message may quote the URL


def test_redaction_hides_passwords_queries_and_anything_that_may_be_a_key() -> None:
    """Passwords become ***, queries ..., unknown schemes show only the scheme, a bare string only its length."""
    assert redact_url("redis://:s3cret@h:6379/0") == "redis://:***@h:6379/0"
    assert redact_url("redis://admin:s3cret@h/0") == "redis://admin:***@h/0"
    assert redact_url("redis://s3cret@h/0") == "redis://***@h/0"
    assert redact_url("redis://u:p@ss@h/0") == "redis://u:***@h/0"
    assert redact_url("redis://h/0?password=s3cret#frag") == "redis://h/0?..."
    assert redact_url("sqlite:///var/s.db") == "sqlite:///var/s.db"
    assert redact_url("amqp://u:s3cret@h") == "amqp:..."
    assert redact_url(KEY) == f"a str of length {len(KEY)}"
    assert redact_url(None) == "a NoneType"
    with pytest.raises(InvalidRequestError) as caught:
        parse_store_url(KEY)
    assert KEY not in str(caught.value)
    with pytest.raises(InvalidRequestError, match="store"):
        parse_store_url(b"memory:")


async def test_open_store_checks_its_settings() -> None:
    """capacity, rate, burst, lease and the API key are checked; a lease of None is for memory: only."""
    async with await open_store("memory:", api_key=KEY, capacity=2, rate=5, lease=None) as state:
        assert isinstance(state.slots, InMemoryJobSlots)
        assert state.slots.lease is None
        assert (state.kind, state.url, state.bucket.rate, state.bucket.burst) == ("memory", "memory:", 5, 5)
        assert KEY not in repr(state)
    for field, settings in (
        ("capacity", {"capacity": 0, "rate": 1}),
        ("rate", {"capacity": 1, "rate": 0}),
        ("burst", {"capacity": 1, "rate": 1, "burst": 0.5}),
        ("lease", {"capacity": 1, "rate": 1, "lease": -1}),
    ):
        with pytest.raises(InvalidRequestError, match=field):
            await open_store("memory:", api_key=KEY, **settings)
    with pytest.raises(InvalidRequestError, match="api_key"):
        await open_store("memory:", api_key="", capacity=1, rate=1)
    with pytest.raises(InvalidRequestError, match=r"lease.*sqlite store needs leases"):
        await open_store("sqlite:///unused.sqlite", api_key=KEY, capacity=1, rate=1, lease=None)


async def test_a_sqlite_path_that_cannot_be_used_is_refused(tmp_path: Path) -> None:
    """A folder or a file that is not a database is an InvalidRequestError on store, naming the path."""
    folder = tmp_path / "folder"
    folder.mkdir()
    not_a_db = tmp_path / "notes.txt"
    not_a_db.write_text("not a database, but long enough to look like a file header to SQLite\n" * 20)
    for path in (folder, not_a_db):
        with pytest.raises(InvalidRequestError, match="SQLite file") as caught:
            await open_store(f"sqlite://{path}", api_key=KEY, capacity=1, rate=1)
        assert caught.value.value == f"sqlite://{path}"


async def test_a_redis_store_never_shows_its_password() -> None:
    """open_store() of a Redis URL with a password: neither the state's repr nor its url contains it."""
    pytest.importorskip("redis")
    state = await open_store("redis://app:s3cret-pw@127.0.0.1:1/3", api_key=KEY, capacity=1, rate=1)
    async with state:  # no connection is made until a command is sent
        assert state.url == "redis://app:***@127.0.0.1:1/3"
        for shown in (repr(state), repr(state.slots), repr(state.bucket), repr(state.store), repr(state.watches)):
            assert "s3cret" not in shown
            assert KEY not in shown
