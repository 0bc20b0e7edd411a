"""One account's shared state, opened from a store URL: in memory, in a SQLite file, or on Redis.

:func:`open_store` reads the URL and returns the four primitives of ``_shared.py`` (job slots, the
request bucket, the job store, watch leases) of one store as one :class:`SharedState`:

- ``memory:``: in this process only (the default: today's single-process behaviour);
- ``sqlite:///absolute/path`` or ``sqlite:relative/path``: one file on a local disk, shared by the
  processes of one host (``_sqlite_shared.py``);
- ``redis://[user:password@]host[:port][/db]`` or ``rediss://...`` (TLS): processes on many hosts
  (``_redis.py``; needs the extra ``fastrouter-async[redis]``).

Unlike SQLAlchemy's URLs, ``sqlite:///x`` is the absolute path ``/x``, as a ``file:`` URL would be.

A URL is never shown with its password (nor its query, where redis-py also takes options), in an
error or a repr; the API key is turned into its namespace at once and kept nowhere.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import TracebackType
from typing import Final, Literal
from urllib.parse import unquote, urlsplit

import attrs

from ._errors import InvalidRequestError
from ._namespace import key_namespace
from ._redis import RedisJobSlots, RedisJobStore, RedisRequestBucket, RedisSharedValues, RedisWatchLeases, open_redis
from ._shared import (
    InMemoryJobSlots,
    InMemoryJobStore,
    InMemoryRequestBucket,
    InMemoryWatchLeases,
    JobSlots,
    JobStore,
    RequestBucket,
    WatchLeases,
    bucket_settings,
    positive_count,
    positive_duration,
)
from ._shared_values import InMemorySharedValues, SharedValues
from ._sqlite_db import SqliteDatabase
from ._sqlite_shared import (
    SqliteJobSlots,
    SqliteJobStore,
    SqliteRequestBucket,
    SqliteSharedValues,
    SqliteWatchLeases,
)

__all__ = ["DEFAULT_LEASE", "STORES_ALLOWED", "SharedState", "StoreURL", "open_store", "parse_store_url", "redact_url"]

DEFAULT_LEASE: Final = 30.0
# Seconds a job slot is held without a renewal, in every store: a process that dies gives its slots
# back within 30 s, and a holder renewing every 10 s rides out a few slow renewals.
STORES_ALLOWED: Final = (
    "'memory:' (one process), 'sqlite:///absolute/path' or 'sqlite:relative/path' (processes of one host), "
    "'redis://[user:password@]host[:port][/db]' or 'rediss://...' (processes on many hosts)"
)
_SCHEME: Final = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")

StoreKind = Literal["memory", "sqlite", "redis"]


def redact_url(url: object) -> str:
    """``url`` as it may be shown: no password, no query; only the scheme of an unknown scheme.

    A string that does not start with a scheme is shown as its type and length only: it may be the
    API key given in the wrong place.
    """
    if not isinstance(url, str):
        return f"a {type(url).__name__}"
    scheme = _SCHEME.match(url)
    if scheme is None:
        return f"a str of length {len(url)}"
    if scheme[1].lower() not in {"memory", "sqlite", "redis", "rediss"}:
        return f"{scheme[1]}:..."
    rest = url[scheme.end() :]
    rest, query, _ = rest.partition("?")
    rest = rest.partition("#")[0]
    if rest.startswith("//"):
        authority, slash, path = rest[2:].partition("/")
        userinfo, at, host = authority.rpartition("@")
        if at:
            user, colon, _password = userinfo.partition(":")
            userinfo = f"{user}:***" if colon else "***"
        rest = f"//{userinfo}{at}{host}{slash}{path}"
    return f"{scheme[1]}:{rest}{'?...' if query else ''}"


@attrs.frozen(kw_only=True)
class StoreURL:
    """A store URL, read: its kind, and the SQLite file's path or the Redis URL to connect to."""

    kind: StoreKind
    shown: str
    """The URL without its password: what errors and reprs show."""
    path: Path | None = None
    redis_url: str | None = attrs.field(default=None, repr=False)


def _invalid(url: object, problem: str) -> InvalidRequestError:
    return InvalidRequestError("store", redact_url(url), f"{problem}{'; ' if problem else ''}allowed: {STORES_ALLOWED}")


def parse_store_url(url: object) -> StoreURL:
    """``url`` read as a store URL, or an :class:`InvalidRequestError` (field ``store``) saying what is allowed."""
    if not isinstance(url, str) or _SCHEME.match(url) is None:
        raise _invalid(url, "a URL")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise _invalid(url, "a URL with a valid host and port") from None
    shown = redact_url(url)
    if parts.scheme == "memory":
        if url.lower().rstrip("/") != "memory:":
            raise _invalid(url, "'memory:' takes nothing after it")
        return StoreURL(kind="memory", shown="memory:")
    if parts.scheme == "sqlite":
        return StoreURL(kind="sqlite", shown=shown, path=_sqlite_path(url, parts.netloc, parts.path))
    if parts.scheme in {"redis", "rediss"}:
        if not parts.hostname:
            raise _invalid(url, "a Redis URL needs a host")
        if port == 0:
            raise _invalid(url, "a Redis port from 1 to 65535")
        if parts.path.strip("/") and not parts.path.strip("/").isdigit():
            raise _invalid(url, "the Redis database is a number: redis://host:port/0")
        if parts.fragment:
            raise _invalid(url, "a Redis URL has no #fragment")
        return StoreURL(kind="redis", shown=shown, redis_url=url)
    raise _invalid(url, f"an unknown store {parts.scheme!r}")


def _sqlite_path(url: str, host: str, path: str) -> Path:
    if host:
        raise _invalid(url, "a SQLite store is a file of this host, with no host name: sqlite:///absolute/path")
    if "?" in url or "#" in url:
        raise _invalid(url, "a SQLite path without '?' or '#'")
    decoded = unquote(path)
    if not decoded or decoded.endswith("/") or decoded == ":memory:":
        raise _invalid(url, "a SQLite store needs the path of a file (for a store in memory: 'memory:')")
    return Path(decoded)


@attrs.frozen(kw_only=True)
class SharedState:
    """The four shared primitives of one account in one store; close it with :meth:`aclose` (or ``async with``)."""

    kind: StoreKind
    url: str
    """The store URL without its password."""
    namespace: str
    """:func:`~fastrouter_async._namespace.key_namespace` of the account's API key."""
    slots: JobSlots
    bucket: RequestBucket
    store: JobStore
    watches: WatchLeases
    values: SharedValues
    """Small named values (what polling has learned); the last writer wins."""
    _close: Callable[[], Awaitable[None]] = attrs.field(repr=False, eq=False, alias="close")

    async def aclose(self) -> None:
        """Close the store's connection (nothing to do in memory)."""
        await self._close()

    async def __aenter__(self) -> SharedState:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


async def _nothing() -> None:
    return None


async def open_store(
    url: str,
    *,
    api_key: str,
    capacity: int,
    rate: float,
    burst: float | None = None,
    lease: float | None = DEFAULT_LEASE,
) -> SharedState:
    """Open the store at ``url`` for the account of ``api_key``: ``capacity`` job slots, a bucket of ``rate``/s.

    Every process sharing one account must pass the same ``capacity``, ``rate``, ``burst`` and
    ``lease``. Slots are held under ``lease``: renew them more often than that, in every store alike.
    ``lease=None`` (slots held until released, as a single process's cap is today) is for ``memory:``
    only, where no other process waits for a dead one's slots. ``InvalidRequestError`` (field ``store``) for a
    URL that is not one of :data:`STORES_ALLOWED` or a SQLite file that cannot be used; ``ImportError``
    naming the extra ``fastrouter-async[redis]`` for a Redis URL without redis-py installed.
    """
    parsed = parse_store_url(url)
    namespace = key_namespace(api_key)
    capacity = positive_count("capacity", capacity)
    rate, burst = bucket_settings(rate, burst)
    if lease is not None:
        lease = positive_duration("lease", lease)
    elif parsed.kind != "memory":
        raise InvalidRequestError("lease", lease, f"a number of seconds > 0: the {parsed.kind} store needs leases")
    if parsed.kind == "memory":
        memory_store = InMemoryJobStore()
        return SharedState(
            kind=parsed.kind,
            url=parsed.shown,
            namespace=namespace,
            slots=InMemoryJobSlots(capacity, lease=lease),
            bucket=InMemoryRequestBucket(rate, burst=burst),
            store=memory_store,
            watches=InMemoryWatchLeases(memory_store),
            values=InMemorySharedValues(),
            close=_nothing,
        )
    assert lease is not None
    if parsed.kind == "sqlite":
        assert parsed.path is not None
        try:
            db = await SqliteDatabase.open(parsed.path)
        except (OSError, sqlite3.Error) as exc:
            raise InvalidRequestError(
                "store", parsed.shown, f"a SQLite file this process can create or write, on a local disk ({exc})"
            ) from exc
        sqlite_store = SqliteJobStore(db, namespace)
        return SharedState(
            kind=parsed.kind,
            url=parsed.shown,
            namespace=namespace,
            slots=SqliteJobSlots(db, namespace, capacity=capacity, lease=lease),
            bucket=SqliteRequestBucket(db, namespace, rate=rate, burst=burst),
            store=sqlite_store,
            watches=SqliteWatchLeases(sqlite_store),
            values=SqliteSharedValues(db, namespace),
            close=db.aclose,
        )
    assert parsed.redis_url is not None
    try:
        client = open_redis(parsed.redis_url)
    except ValueError:
        # redis-py's message may quote the URL, password included: not chained.
        raise InvalidRequestError("store", parsed.shown, f"a Redis URL redis-py accepts; {STORES_ALLOWED}") from None
    redis_store = RedisJobStore(client, namespace)
    return SharedState(
        kind=parsed.kind,
        url=parsed.shown,
        namespace=namespace,
        slots=RedisJobSlots(client, namespace, capacity=capacity, lease=lease),
        bucket=RedisRequestBucket(client, namespace, rate=rate, burst=burst),
        store=redis_store,
        watches=RedisWatchLeases(client, redis_store),
        values=RedisSharedValues(client, namespace),
        close=client.aclose,
    )
