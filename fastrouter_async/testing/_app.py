"""The aiohttp application: FastRouter's routes, over a simulator's :class:`Backend`.

Every route goes through one wrapper that records the request, picks the
fault (if any) that applies to it, and then either answers normally or
misbehaves as the fault says. The handlers only translate: HTTP requests to
calls of the backend (what to do is decided there), outcomes to HTTP answers.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from aiohttp import web

from . import _cache, _payloads
from ._assets import EtagMode, video_answer
from ._cache import CacheHitStyle
from ._core import MODEL_MISMATCH, Created, Polled, Redirect, Refused
from ._limits import retry_after_header
from ._model_list import default_model_list
from ._plans import Fault
from ._records import RecordedRequest, RecordRoute, SimulatedJob

__all__ = ["Backend", "ServedSettings", "build_app"]

API = "/api/v1"

_SEND_CHUNK = 64 * 1024  # videos go out in pieces, so downloads overlap and can be cut mid-body
_VIDEO_FAULTS = frozenset({"truncate", "corrupt", "serve"})  # applied by the video sender itself

Inner = Callable[[web.Request, RecordedRequest], Awaitable[web.StreamResponse]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ServedSettings(Protocol):
    """The simulator settings that shape answers on the wire, read at each request."""

    asset_origin: str | None
    cache_hit_style: CacheHitStyle
    download_ranges: bool
    download_etag: EtagMode
    download_checksums: tuple[str, ...]
    download_content_length: bool
    model_list: object

    def timeline(self) -> dict[str, Any]: ...
    def stats(self) -> dict[str, int]: ...
    def cache_stats(self) -> dict[str, Any]: ...


class Backend(Protocol):
    """What the application asks of the simulator: every decision and every change of state."""

    def record(
        self, route: RecordRoute, *, method: str, path: str, headers: Mapping[str, str], json: Any, query: str
    ) -> RecordedRequest: ...
    def over_rate(self, route: RecordRoute) -> float | None: ...
    def take_fault(self, route: RecordRoute) -> Fault | None: ...
    def download_started(self) -> None: ...
    def download_ended(self) -> None: ...
    def authorized(self, authorization: str | None) -> bool: ...
    def create(self, body: Any, headers: Mapping[str, str], authorization: str | None) -> Created | Refused: ...
    def poll(self, task_id: str, model: Any, *, model_sent: bool) -> Polled | Refused: ...
    def download(
        self, task_id: str, *, sig: str | None, hosted: bool, authorization: str | None, path_qs: str
    ) -> bytes | Redirect | Refused: ...
    def video_for(self, task_id: str) -> bytes: ...
    def new_link_sig(self) -> str: ...


def build_app(backend: Backend, settings: ServedSettings) -> web.Application:
    """A new application serving FastRouter's routes for ``backend``, answering as ``settings`` say."""
    routes = _Routes(backend, settings)
    app = web.Application()
    app.on_shutdown.append(routes.on_shutdown)
    router = app.router
    router.add_post(f"{API}/videos", routes.wrap("submit", routes.submit))
    router.add_post(f"{API}/getVideoResponse", routes.wrap("poll", routes.poll_post))
    router.add_post(f"{API}/getAsyncResponse", routes.wrap("poll", routes.poll_post))
    router.add_get(f"{API}/videos/{{task_id}}", routes.wrap("poll", routes.poll_get))  # GET routes also answer HEAD
    router.add_get("/videos-content/{task_id}", routes.wrap("download", routes.download))
    router.add_get("/cdn/{task_id}.mp4", routes.wrap("download", routes.download))
    router.add_get("/healthz", routes.wrap("other", routes.healthz))
    router.add_get(f"{API}/models", routes.wrap("other", routes.models))  # public: no key checked
    # The simulator's own introspection, for clients in another process: never recorded, never faulted.
    router.add_get("/_simulator/jobs", routes.timeline)
    router.add_get("/_simulator/stats", routes.stats)
    router.add_get("/_simulator/cache", routes.cache)
    router.add_route("*", "/{tail:.*}", routes.wrap("other", routes.not_found))  # last: what nothing else matched
    return app


class _Routes:
    """The handlers of one application, bound to its simulator's backend and settings."""

    def __init__(self, backend: Backend, settings: ServedSettings) -> None:
        self.backend = backend
        self.settings = settings
        self.closing = asyncio.Event()

    async def on_shutdown(self, app: web.Application) -> None:
        """Wake requests held by ``slow`` faults so the server can close at once."""
        self.closing.set()

    def wrap(self, route: RecordRoute, inner: Inner) -> Handler:
        """Record each request of ``route`` and apply the fault that takes it, if any."""

        async def handle(request: web.Request) -> web.StreamResponse:
            record = await self._record(route, request)
            wait = self.backend.over_rate(route)
            if wait is not None:  # the account's request rate answers first: no fault is used up
                record.status = 429
                return _error(429, headers={"Retry-After": retry_after_header(wait)})
            record.fault = self.backend.take_fault(route)
            if route == "download":
                self.backend.download_started()
            try:
                response = await self._answer(request, record, inner)
            finally:
                if route == "download":
                    self.backend.download_ended()
            if response is None:
                record.dropped = True
                return _drop(request)
            record.status = response.status
            return response

        return handle

    async def _record(self, route: RecordRoute, request: web.Request) -> RecordedRequest:
        raw = await request.read()
        return self.backend.record(
            route,
            method=request.method,
            path=request.path,
            headers=request.headers,
            json=_decode_json(raw),
            query=request.query_string,
        )

    async def _answer(self, request: web.Request, record: RecordedRequest, inner: Inner) -> web.StreamResponse | None:
        """The response to send, or ``None`` to drop the connection without one."""
        fault = record.fault
        if fault is None:
            return await inner(request, record)
        if fault.kind == "status":
            return _status_response(fault)
        if fault.kind == "malformed_json":
            return web.Response(body=_payloads.MALFORMED_JSON, content_type="application/json")
        if fault.kind in _VIDEO_FAULTS:
            response = await inner(request, record)
            if response.prepared or fault.kind != "truncate":
                return response  # a video answer applied the fault while sending; others pass unchanged
            return await _truncated(request, record, response, fault.nbytes)
        if fault.kind == "drop":
            if fault.after_processing:
                await inner(request, record)
            return None
        # "slow": wait before handling, or handle first and hold the answer back
        if not fault.after_processing:
            return await inner(request, record) if await self._wait(fault.delay) else None
        response = await inner(request, record)
        return response if await self._wait(fault.delay) else None

    async def _wait(self, delay: float) -> bool:
        """Sleep ``delay`` seconds; False if the server began shutting down meanwhile."""
        try:
            async with asyncio.timeout(delay):
                await self.closing.wait()
        except TimeoutError:
            return True
        return False

    # -- routes --------------------------------------------------------------

    async def submit(self, request: web.Request, record: RecordedRequest) -> web.StreamResponse:
        created = self.backend.create(record.json, request.headers, request.headers.get("Authorization"))
        if isinstance(created, Refused):
            return _refused(created)
        job = created.job
        record.task_id, record.cache_hit = job.task_id, created.cache_hit
        if created.cache_hit:
            model = record.json["model"]  # this request's (without filter_on_model, the cached job's may differ)
            return web.json_response(
                _cache.hit_body(task_id=job.task_id, model=model, style=self.settings.cache_hit_style)
            )
        return web.json_response(
            _payloads.create_body(task_id=job.task_id, model=job.model, cost_usd=job.plan.cost_usd)
        )

    async def poll_post(self, request: web.Request, record: RecordedRequest) -> web.StreamResponse:
        if not self.backend.authorized(request.headers.get("Authorization")):
            return _error(401)
        body = record.json
        if not isinstance(body, dict) or not _payloads.non_empty_str(body.get("taskId")):
            return _error(
                400, "Bad Request - 'taskId' is required and must be a non-empty string", code="invalid_task_id"
            )
        model = body.get("model")
        return await self._poll(request, record, body["taskId"], model, model_sent=model is not None)

    async def poll_get(self, request: web.Request, record: RecordedRequest) -> web.StreamResponse:
        if not self.backend.authorized(request.headers.get("Authorization")):
            return _error(401)
        model = request.query.get("model")
        return await self._poll(request, record, request.match_info["task_id"], model, model_sent=model is not None)

    async def download(self, request: web.Request, record: RecordedRequest) -> web.StreamResponse:
        task_id = request.match_info["task_id"]
        record.task_id = task_id
        video = self.backend.download(
            task_id,
            sig=request.query.get("sig"),
            hosted=request.path.startswith("/videos-"),
            authorization=request.headers.get("Authorization"),
            path_qs=request.path_qs,
        )
        if isinstance(video, Refused):
            return _refused(video)
        if isinstance(video, Redirect):
            return web.Response(status=302, headers={"Location": video.location})
        return await self._send_video(request, record, video)

    async def _send_video(self, request: web.Request, record: RecordedRequest, video: bytes) -> web.StreamResponse:
        """Stream ``video`` in pieces, honouring ranges and the simulator's download settings and video faults."""
        fault = record.fault
        if fault is not None and fault.kind == "serve" and fault.video is not None:
            video = fault.video
        ranged = request.method in ("GET", "HEAD")  # Range means nothing to a POST (a video_body poll)
        answer = video_answer(
            video,
            range_header=request.headers.get("Range") if ranged else None,
            if_range=request.headers.get("If-Range") if ranged else None,
            ranges=self.settings.download_ranges,
            etag=self.settings.download_etag,
            checksums=self.settings.download_checksums,
        )
        body = answer.body
        if fault is not None and fault.kind == "corrupt" and body:
            middle = len(body) // 2
            body = body[:middle] + bytes([body[middle] ^ 0xFF]) + body[middle + 1 :]
        cut = fault.nbytes if fault is not None and fault.kind == "truncate" else None
        response = web.StreamResponse(status=answer.status, headers=answer.headers)
        if self.settings.download_content_length or cut is not None:
            response.content_length = len(body)
        else:
            response.enable_chunked_encoding()
        await response.prepare(request)
        if request.method == "HEAD":
            return response
        sent = body if cut is None else body[:cut]
        for start in range(0, len(sent), _SEND_CHUNK):
            await response.write(sent[start : start + _SEND_CHUNK])
        if cut is not None:
            record.status = answer.status
            record.dropped = True
            if request.transport is not None:
                request.transport.close()
            return response
        await response.write_eof()
        return response

    async def healthz(self, request: web.Request, record: RecordedRequest) -> web.StreamResponse:
        return web.Response(text="ok")

    async def models(self, request: web.Request, record: RecordedRequest) -> web.StreamResponse:
        """FastRouter's public model list: ``sim.model_list`` (bytes are sent as they are), else the default."""
        listed = self.settings.model_list
        if isinstance(listed, bytes):
            return web.Response(body=listed, content_type="application/json")
        return web.json_response(default_model_list() if listed is None else listed)

    async def timeline(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(self.settings.timeline())

    async def stats(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(self.settings.stats())

    async def cache(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(self.settings.cache_stats())

    async def not_found(self, request: web.Request, record: RecordedRequest) -> web.StreamResponse:
        return _error(404, f"Not Found - no route for {request.method} {request.path}", code="route_not_found")

    # -- polling -------------------------------------------------------------

    async def _poll(
        self, request: web.Request, record: RecordedRequest, task_id: str, model: Any, *, model_sent: bool
    ) -> web.StreamResponse:
        record.task_id = task_id
        record.model_sent = model_sent
        polled = self.backend.poll(task_id, model, model_sent=model_sent)
        if isinstance(polled, Refused):
            if polled.code == MODEL_MISMATCH:
                record.model_matched = False
            return _refused(polled)
        if model_sent:
            record.model_matched = True
        if polled.stage == "hidden":
            return _error(404)
        if polled.stage == "running":
            return web.json_response(_running(polled.job))
        return await self._final(request, record, polled.job)

    async def _final(self, request: web.Request, record: RecordedRequest, job: SimulatedJob) -> web.StreamResponse:
        plan = job.plan
        outcome = plan.outcome
        if outcome == "vanish":
            return _error(404)
        if outcome == "video_body":
            return await self._send_video(request, record, self.backend.video_for(job.task_id))
        if outcome == "failed":
            body = _payloads.failed_body(
                task_id=job.task_id, error=plan.error, with_status=not plan.omit_overall_status
            )
            return web.json_response(body)
        if outcome == "failed_generation":
            gen = _generation(job, status="failed", fail_msg=plan.error)
            body = _payloads.failed_generation_body(
                task_id=job.task_id, gen=gen, with_status=not plan.omit_overall_status
            )
            return web.json_response(body)
        return web.json_response(self._success(request, job))

    def _success(self, request: web.Request, job: SimulatedJob) -> dict[str, Any]:
        """The success answer of the ``succeed``, ``inline_base64`` and ``no_url`` outcomes."""
        plan = job.plan
        origin = str(request.url.origin())
        gen = _generation(job, status=plan.status_word)
        asset_url = None
        if plan.outcome == "succeed":
            # Each answer signs the provider link afresh, as providers do; expire_links() invalidates old ones.
            gen["url"] = f"{origin}/cdn/{job.task_id}.mp4?sig={self.backend.new_link_sig()}"
            asset_url = f"{(self.settings.asset_origin or origin).rstrip('/')}/videos-content/{job.task_id}"
        elif plan.outcome == "inline_base64":
            gen["bytesBase64Encoded"] = base64.b64encode(self.backend.video_for(job.task_id)).decode("ascii")
        return _payloads.success_body(
            task_id=job.task_id,
            word=plan.status_word,
            gen=gen,
            with_status=not plan.omit_overall_status,
            cost_usd=plan.cost_usd,
            credits=plan.credits,
            asset_url=asset_url,
            cached_at=job.cached_at or int(time.time()),
        )


def _running(job: SimulatedJob) -> dict[str, Any]:
    plan = job.plan
    gen = _generation(job, status=plan.running_word)
    return _payloads.running_body(
        task_id=job.task_id, word=plan.running_word, gen=gen, with_status=not plan.omit_overall_status
    )


def _generation(job: SimulatedJob, *, status: str, fail_msg: str = "") -> dict[str, Any]:
    if job.cached_at is None:
        updated = _payloads.iso_timestamp()
    else:
        updated = _payloads.iso_timestamp(datetime.datetime.fromtimestamp(job.cached_at, datetime.UTC))
    return _payloads.generation(
        generation_id=job.generation_id, status=status, created=job.created_date, updated=updated, fail_msg=fail_msg
    )


def _decode_json(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _refused(refused: Refused) -> web.Response:
    return _error(refused.status, refused.message, code=refused.code)


def _error(
    status: int, message: str | None = None, *, code: str | None = None, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.json_response(_payloads.error_body(status, message, code=code), status=status, headers=headers)


def _status_response(fault: Fault) -> web.Response:
    status = fault.http_status
    assert status is not None  # checked when the fault was built
    headers = dict(fault.headers)
    body = fault.body
    if body is None:
        return web.json_response(_payloads.error_body(status), status=status, headers=headers)
    if isinstance(body, str):
        return web.Response(status=status, text=body, headers=headers)
    return web.json_response(dict(body), status=status, headers=headers)


def _drop(request: web.Request) -> web.StreamResponse:
    """Close the connection; aiohttp then fails to write the returned placeholder and gives up quietly."""
    if request.transport is not None:
        request.transport.close()
    return web.Response()


async def _truncated(
    request: web.Request, record: RecordedRequest, response: web.StreamResponse, nbytes: int
) -> web.StreamResponse:
    """Send ``response``'s status and headers with its full length, ``nbytes`` of its body, then drop."""
    body = response.body if isinstance(response, web.Response) else None
    payload = body if isinstance(body, bytes) else b""
    headers = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
    stream = web.StreamResponse(status=response.status, headers=headers)
    stream.content_length = len(payload)
    await stream.prepare(request)
    await stream.write(payload[:nbytes])
    record.status = response.status
    record.dropped = True
    if request.transport is not None:
        request.transport.close()
    return stream
