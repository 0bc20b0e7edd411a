"""The shared primitives of ``_shared.py`` on Redis, for many processes on many hosts.

Needs the optional extra ``fastrouter-async[redis]`` (redis-py's asyncio client); :func:`open_redis`
imports it on first use and says which extra to install when it is missing. The classes only call
methods of the client they are given.

Every change that reads before it writes is one Lua script (atomic on the server), and every
expiry is measured on the Redis server's clock (``TIME``, ``PX``), so hosts whose clocks disagree
still agree on when a lease or a pause ends.

Keys of one account live under ``fra:{NAMESPACE}:``, where NAMESPACE is
:func:`~fastrouter_async._namespace.key_namespace` of its API key (never the key itself). The braces
make the namespace a Redis Cluster hash tag, so all keys of one account sit in one slot.

- ``slots:NAME``   ZSET holder -> lease expiry (server ms): the job slots
- ``bucket:NAME``  HASH ``tokens``, ``at`` (server µs): the request bucket; ``pause``: STRING with a PX expiry
- ``job:KEY``      HASH: one job record; ``jobs``: ZSET key -> submitted_at; ``tasks``: HASH task id -> key;
  ``unfinished``: SET of keys whose job has not ended
- ``watch:TASK``   STRING owner, with a PX expiry: the watch lease of one task
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Any, Final, cast

import anyio

from ._models import JobState
from ._namespace import check_namespace
from ._shared import (
    BucketSettings,
    JobRecord,
    check_take,
    positive_count,
    positive_duration,
    record_matches,
)
from ._shared_values import check_value

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = [
    "REDIS_EXTRA_MISSING",
    "RedisJobSlots",
    "RedisJobStore",
    "RedisRequestBucket",
    "RedisWatchLeases",
    "open_redis",
    "prefix",
]

REDIS_EXTRA_MISSING: Final = (
    "the Redis store needs the redis package: pip install 'fastrouter-async[redis]' (redis-py 5.0.1 or later)"
)
DEFAULT_SLOT_POLL: Final = 0.05
# A waiting acquire asks again at least this often (seconds): a slot released by another process
# is noticed within 50 ms, at 20 small script calls a second per waiting process.


def open_redis(url: str) -> Redis:
    """A redis-py asyncio client for ``url`` (``redis://host:port/db``); close it with ``await client.aclose()``."""
    try:
        import redis.asyncio  # noqa: PLC0415 -- optional dependency, imported when a Redis store is used
    except ImportError as exc:
        raise ImportError(REDIS_EXTRA_MISSING) from exc
    return redis.asyncio.Redis.from_url(url)


def prefix(namespace: str) -> str:
    """``fra:{namespace}:``, the start of every key of one account.

    Only what :func:`key_namespace` returns is accepted, so that an API key passed here by mistake is
    refused (and not echoed) instead of being written into every key.
    """
    return f"fra:{{{check_namespace(namespace)}}}:"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


# Server time in ms and µs, as Lua numbers (exact: below 2**53).
_NOW_MS: Final = "local t = redis.call('TIME'); local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
_NOW_US: Final = "local t = redis.call('TIME'); local now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"

# KEYS: slots. ARGV: holder, capacity, lease ms. Returns 0 when held, else ms until the first lease may end.
_SLOT_ACQUIRE: Final = (
    _NOW_MS
    + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZSCORE', KEYS[1], ARGV[1]) or redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[2]) then
    redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
    return 0
end
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return math.max(1, tonumber(first[2]) - now)
"""
)
# KEYS: slots. ARGV: holder, lease ms. Returns 1 when renewed, 0 when the lease was gone.
_SLOT_RENEW: Final = (
    _NOW_MS
    + """
local expires = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not expires then return 0 end
if tonumber(expires) <= now then redis.call('ZREM', KEYS[1], ARGV[1]); return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
return 1
"""
)
_SLOT_IN_USE: Final = (
    _NOW_MS + "redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)\nreturn redis.call('ZCARD', KEYS[1])"
)

# KEYS: bucket, pause. ARGV: rate per second, burst, n. Returns 0 when taken, else µs to wait.
_BUCKET_TAKE: Final = (
    _NOW_US
    + """
local paused = redis.call('PTTL', KEYS[2])
if paused > 0 then return paused * 1000 end
local rate, burst, n = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local tokens = tonumber(redis.call('HGET', KEYS[1], 'tokens'))
local at = tonumber(redis.call('HGET', KEYS[1], 'at'))
if tokens == nil or at == nil then tokens = burst; at = now end
tokens = math.min(burst, tokens + math.max(0, now - at) * rate / 1000000)
local wait = 0
if tokens >= n then tokens = tokens - n else wait = math.ceil((n - tokens) * 1000000 / rate) end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens), 'at', string.format('%.0f', now))
-- An idle bucket is full again after (burst - tokens) / rate: then it may as well not exist.
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) * 1000 / rate) + 1000)
return wait
"""
)
# KEYS: pause. ARGV: ms. Returns the ms of pause left (the longer of the two).
_PAUSE: Final = """
local left = redis.call('PTTL', KEYS[1])
local ms = tonumber(ARGV[1])
if left >= ms then return left end
redis.call('SET', KEYS[1], '1', 'PX', ms)
return ms
"""

# KEYS: job, jobs, unfinished. ARGV: key, model, cache key ('' for none), submitted_at, body JSON.
_RECORD_INTENT: Final = (
    _NOW_US
    + """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'key', ARGV[1], 'model', ARGV[2], 'cache_key', ARGV[3], 'submitted_at', ARGV[4],
           'body', ARGV[5], 'updated_us', string.format('%.0f', now))
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
redis.call('SADD', KEYS[3], ARGV[1])
return 1
"""
)
# KEYS: job, tasks. ARGV: key, task id. Returns 1, 0 (no such job) or the task id it already has.
_RECORD_TASK: Final = (
    _NOW_US
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local had = redis.call('HGET', KEYS[1], 'task_id')
if had and had ~= ARGV[2] then return had end
if not had then
    redis.call('HSET', KEYS[1], 'task_id', ARGV[2], 'state', 'pending', 'updated_us', string.format('%.0f', now))
end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[1])
return 1
"""
)
# KEYS: job, unfinished. ARGV: task id, state, done (1/0), then detail field/JSON pairs. Returns 1 or 0 (no job).
_RECORD_STATE: Final = (
    _NOW_US
    + """
if redis.call('HGET', KEYS[1], 'task_id') ~= ARGV[1] then return 0 end
if redis.call('HGET', KEYS[1], 'done') ~= '1' then
    redis.call('HSET', KEYS[1], 'state', ARGV[2], 'done', ARGV[3])
    if ARGV[3] == '1' then redis.call('SREM', KEYS[2], redis.call('HGET', KEYS[1], 'key')) end
end
for i = 4, #ARGV, 2 do redis.call('HSET', KEYS[1], 'd:' .. ARGV[i], ARGV[i + 1]) end
redis.call('HSET', KEYS[1], 'updated_us', string.format('%.0f', now))
return 1
"""
)
# KEYS: watch. ARGV: owner, ttl ms. Owner-checked renew and release.
_WATCH_RENEW: Final = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('PEXPIRE', KEYS[1], ARGV[2])
"""
_WATCH_RELEASE: Final = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('DEL', KEYS[1])
"""


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


class RedisJobSlots:
    """:class:`~fastrouter_async._shared.JobSlots` on a Redis ZSET: a lease-based counting semaphore.

    Unlike the in-process slots, a lease is required: it is what gives the slots of a dead process back.
    A holder must :meth:`renew` more often than every ``lease`` seconds. An acquire cancelled while its
    script was on its way may have taken the slot: :meth:`release` the holder (harmless if it holds
    none), or the lease gives it back. A waiting acquire asks again every ``poll`` seconds at most
    (sooner when the first lease ends sooner); waiters are not served in arrival order.
    """

    def __init__(
        self,
        client: Redis,
        namespace: str,
        *,
        capacity: int,
        lease: float,
        name: str = "jobs",
        poll: float = DEFAULT_SLOT_POLL,
    ) -> None:
        self._capacity = positive_count("capacity", capacity)
        self._lease = positive_duration("lease", lease)
        self._poll = positive_duration("poll", poll)
        self._key = f"{prefix(namespace)}slots:{name}"
        self._acquire = client.register_script(_SLOT_ACQUIRE)
        self._renew = client.register_script(_SLOT_RENEW)
        self._in_use = client.register_script(_SLOT_IN_USE)
        self._client = client

    def __repr__(self) -> str:
        return f"<RedisJobSlots {self._key} capacity={self._capacity} lease={self._lease}>"

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def lease(self) -> float:
        return self._lease

    async def _take(self, holder: str) -> float:
        wait_ms = await self._acquire(keys=[self._key], args=[holder, self._capacity, _ms(self._lease)])
        return int(wait_ms) / 1000

    async def acquire(self, holder: str) -> None:
        while True:
            wait = await self._take(holder)
            if wait == 0:
                return
            await anyio.sleep(min(wait, self._poll))

    async def try_acquire(self, holder: str) -> bool:
        return await self._take(holder) == 0

    async def renew(self, holder: str) -> bool:
        return bool(await self._renew(keys=[self._key], args=[holder, _ms(self._lease)]))

    async def release(self, holder: str) -> None:
        await self._client.zrem(self._key, holder)

    async def in_use(self) -> int:
        return int(await self._in_use(keys=[self._key]))


class RedisRequestBucket(BucketSettings):
    """:class:`~fastrouter_async._shared.RequestBucket` in a Redis hash, refilled on the server's clock.

    Every process must use the same ``rate`` and ``burst`` for one ``name``: they are sent with each take.
    """

    def __init__(
        self, client: Redis, namespace: str, *, rate: float, burst: float | None = None, name: str = "api"
    ) -> None:
        super().__init__(rate, burst)
        base = prefix(namespace)
        self._keys = [f"{base}bucket:{name}", f"{base}pause"]
        self._take = client.register_script(_BUCKET_TAKE)
        self._pause = client.register_script(_PAUSE)
        self._client = client

    def __repr__(self) -> str:
        return f"<RedisRequestBucket {self._keys[0]} rate={self._rate:g}/s burst={self._burst:g}>"

    async def take(self, n: float = 1.0) -> float:
        check_take(self, n)
        wait_us = await self._take(keys=self._keys, args=[repr(self._rate), repr(self._burst), repr(float(n))])
        return int(wait_us) / 1_000_000

    async def pause(self, seconds: float) -> float:
        left = await self._pause(keys=self._keys[1:], args=[_ms(positive_duration("seconds", seconds))])
        return int(left) / 1000

    async def paused_for(self) -> float:
        return max(0, int(await self._client.pttl(self._keys[1]))) / 1000


def _record(fields: Mapping[bytes | str, bytes | str]) -> JobRecord | None:
    """A job record from its hash (``None`` for a hash that vanished or is not a record)."""
    raw = {_text(k): _text(v) for k, v in fields.items()}
    if "key" not in raw or "submitted_at" not in raw:
        return None
    state = raw.get("state")
    return JobRecord(
        key=raw["key"],
        model=raw.get("model", ""),
        submitted_at=float(raw["submitted_at"]),
        cache_key=raw.get("cache_key") or None,
        request_body=json.loads(raw.get("body", "{}")),
        task_id=raw.get("task_id"),
        state=JobState(state) if state else None,
        details={k[2:]: json.loads(v) for k, v in raw.items() if k.startswith("d:")},
    )


class RedisJobStore:
    """:class:`~fastrouter_async._shared.JobStore` in Redis: a hash per job, indexed by submit time.

    Every write is acknowledged by the Redis server before it returns; whether it survives a crash
    of the server depends on the server's persistence settings (docs/many-workers.md).
    """

    def __init__(self, client: Redis, namespace: str) -> None:
        self._prefix = prefix(namespace)
        self._jobs = f"{self._prefix}jobs"
        self._tasks = f"{self._prefix}tasks"
        self._unfinished = f"{self._prefix}unfinished"
        self._intent = client.register_script(_RECORD_INTENT)
        self._task = client.register_script(_RECORD_TASK)
        self._state = client.register_script(_RECORD_STATE)
        self._client = client

    def __repr__(self) -> str:
        return f"<RedisJobStore {self._prefix}>"

    @property
    def key_prefix(self) -> str:
        """``fra:{namespace}:``"""
        return self._prefix

    def job_key(self, key: str) -> str:
        return f"{self._prefix}job:{key}"

    @property
    def unfinished_key(self) -> str:
        return self._unfinished

    async def record_intent(
        self,
        key: str,
        *,
        request_body: Mapping[str, Any],
        cache_key: str | None,
        model: str,
        submitted_at: float,
    ) -> bool:
        body = json.dumps(request_body, separators=(",", ":"), sort_keys=True)
        keys = [self.job_key(key), self._jobs, self._unfinished]
        return bool(await self._intent(keys=keys, args=[key, model, cache_key or "", repr(submitted_at), body]))

    async def record_task(self, key: str, task_id: str) -> None:
        done = await self._task(keys=[self.job_key(key), self._tasks], args=[key, task_id])
        if done == 0:
            raise KeyError(key)
        if done != 1:
            raise ValueError(f"job {key!r} already has task id {_text(done)!r}, not {task_id!r}")

    async def _key_of(self, task_id: str) -> str | None:
        key = await self._client.hget(self._tasks, task_id)
        return None if key is None else _text(key)

    async def record_state(self, task_id: str, state: JobState, *, details: Mapping[str, Any] | None = None) -> None:
        key = await self._key_of(task_id)
        pairs: list[str] = []
        for name, value in (details or {}).items():
            pairs += [name, json.dumps(value, separators=(",", ":"))]
        args = [task_id, state.value, "1" if state.done else "0", *pairs]
        if key is None or not await self._state(keys=[self.job_key(key), self._unfinished], args=args):
            raise KeyError(task_id)

    async def get(self, task_id: str) -> JobRecord | None:
        key = await self._key_of(task_id)
        return None if key is None else _record(await self._client.hgetall(self.job_key(key)))

    async def list(
        self,
        *,
        states: Collection[JobState | None] | None = None,
        model: str | None = None,
        finished: bool | None = None,
        limit: int | None = None,
    ) -> list[JobRecord]:
        # Reads every record in submit order and filters here: enough for thousands of jobs.
        keys = [_text(k) for k in cast("list[bytes | str]", await self._client.zrange(self._jobs, 0, -1))]
        if finished is False:
            unfinished = {_text(k) for k in await self._client.smembers(self._unfinished)}
            keys = [k for k in keys if k in unfinished]
        pipe = self._client.pipeline(transaction=False)
        for key in keys:
            pipe.hgetall(self.job_key(key))
        found: list[JobRecord] = []
        for fields in await pipe.execute():
            record = _record(fields)
            if record is not None and record_matches(record, states, model, finished):
                found.append(record)
                if limit is not None and len(found) >= limit:
                    break
        return found


class RedisWatchLeases:
    """:class:`~fastrouter_async._shared.WatchLeases` as Redis keys set with NX and a PX expiry."""

    def __init__(self, client: Redis, store: RedisJobStore) -> None:
        self._store = store
        self._prefix = store.key_prefix
        self._renew = client.register_script(_WATCH_RENEW)
        self._release = client.register_script(_WATCH_RELEASE)
        self._client = client

    def __repr__(self) -> str:
        return f"<RedisWatchLeases {self._prefix}>"

    def _key(self, task_id: str) -> str:
        return f"{self._prefix}watch:{task_id}"

    async def claim(self, task_id: str, owner: str, ttl: float) -> bool:
        return bool(await self._client.set(self._key(task_id), owner, nx=True, px=_ms(positive_duration("ttl", ttl))))

    async def renew(self, task_id: str, owner: str, ttl: float) -> bool:
        return bool(await self._renew(keys=[self._key(task_id)], args=[owner, _ms(positive_duration("ttl", ttl))]))

    async def release(self, task_id: str, owner: str) -> bool:
        return bool(await self._release(keys=[self._key(task_id)], args=[owner]))

    async def owner(self, task_id: str) -> str | None:
        owner = await self._client.get(self._key(task_id))
        return None if owner is None else _text(owner)

    async def unclaimed(self, limit: int | None = None) -> list[str]:
        keys = [_text(k) for k in await self._client.smembers(self._store.unfinished_key)]
        pipe = self._client.pipeline(transaction=False)
        for key in keys:
            pipe.hmget(self._store.job_key(key), ["task_id", "submitted_at"])
        jobs = sorted(
            (float(_text(at)), _text(task)) for task, at in await pipe.execute() if task is not None and at is not None
        )
        pipe = self._client.pipeline(transaction=False)
        for _, task_id in jobs:
            pipe.exists(self._key(task_id))
        watched = await pipe.execute()
        found = [task_id for (_, task_id), live in zip(jobs, watched, strict=True) if not live]
        return found if limit is None else found[:limit]


class RedisSharedValues:
    """:class:`~fastrouter_async._shared_values.SharedValues` as Redis strings under the account's prefix."""

    def __init__(self, client: Redis, namespace: str) -> None:
        self._client = client
        self._prefix = prefix(namespace)

    def __repr__(self) -> str:
        return f"<RedisSharedValues {self._prefix}>"

    async def get(self, name: str) -> str | None:
        value = await self._client.get(f"{self._prefix}value:{name}")
        return None if value is None else value.decode() if isinstance(value, bytes) else str(value)

    async def put(self, name: str, value: str) -> None:
        check_value(name, value)
        await self._client.set(f"{self._prefix}value:{name}", value)
