"""A FastRouter look-alike HTTP server, for testing code that talks to FastRouter's video API.

It speaks the real wire format (``POST /api/v1/videos``, the three poll
routes, the hosted and "CDN" downloads) over real HTTP on 127.0.0.1, so the
code under test runs unchanged: point its base URL at the simulator.

Serve it and submit a job::

    from fastrouter_async.testing import FastRouterSimulator, JobPlan, Fault

    sim = FastRouterSimulator(api_key="sk-test")
    async with sim.serve() as server:      # an ephemeral port on 127.0.0.1
        server.base_url                    # "http://127.0.0.1:PORT/api/v1"
        ...                                # run your client against it
    assert sim.records.jobs_created == 1

Say how jobs behave with a :class:`JobPlan` (frozen; see its docstring for
the exact rules)::

    sim.default_plan = JobPlan(polls=3)                    # "processing" twice, then success
    sim.plan_next(JobPlan(outcome="failed", error="boom"))  # the next submit fails
    sim.plan_for("cat", JobPlan(outcome="video_body"))     # prompts containing "cat"
    sim.plan_for(lambda body: body.get("seed") == 1, JobPlan(hidden_polls=2))

    sim.plan_with(RealisticDurations(time_scale=0.01, seed=1))  # a duration drawn per model and length

Plans are chosen per submit: queued ``plan_next`` plans first, then the
``plan_for``/``plan_with`` rules in order, then ``default_plan``. ``FastRouterSimulator(clock=...)``
replaces the event loop's clock, so ``JobPlan(duration=...)`` needs no real waiting.

Make things go wrong with a :class:`Fault`::

    sim.inject(Fault.rate_limit(route="poll", retry_after=0.01))
    sim.inject(Fault.server_error(502, route="submit", times=None))  # every submit
    sim.inject(Fault.drop(route="submit", after_processing=True))    # job created, answer lost
    sim.inject(Fault.truncate(1000))                                 # a download cut short
    sim.inject(Fault.corrupt())                                      # one wrong byte, true headers
    sim.inject(Fault.serve(other_bytes))                             # the file changed on the server

Enforce an account's limits, as the real service does (both off by default)::

    sim.account_rate_limit = 50    # submits and polls per second; beyond it, 429 with Retry-After
    sim.account_max_jobs = 16      # jobs in flight; one more submit gets 429 "too many concurrent tasks"
    sim.records.rate_limited, sim.records.concurrency_limited

Say how videos are served::

    sim.download_ranges = False              # ignore Range (a server without range support)
    sim.download_etag = "weak"               # or "strong" (the default: quoted SHA-256), "none"
    sim.download_checksums = ("repr-digest", "content-md5")  # also "digest", "content-digest", "x-goog-hash"
    sim.download_content_length = False      # chunked, no Content-Length
    sim.expire_links(410, hosted=True)       # old links (and hosted copies) answer 410; polls sign new ones

Then assert on what the server saw::

    sim.records.submit_count, sim.records.jobs_created, sim.records.max_in_flight
    sim.records.max_downloads_active      # downloads answered at the same time
    sim.records.polls[-1].json            # {"taskId": ..., "model": ...}
    sim.records.headers_seen("download")  # was Authorization sent to the CDN?
    sim.jobs[task_id].poll_count

``FastRouterSimulator(record_requests=False)`` keeps the counters but not the
requests, for benchmarks that send millions. ``GET /_simulator/jobs`` and
``GET /_simulator/stats`` answer each job's timeline and the counters as JSON,
for clients in another process (``sim.timeline()`` and ``sim.stats()`` here).

Downloads are served for any task id (even one this simulator does not know),
so a second simulator can play another host: ``FastRouterSimulator(asset_origin=...)``
puts the other server's origin into ``fastrouter_assets.urls``, and
``redirect_assets_to=...`` makes downloads answer 302 to it, and
``FastRouterSimulator(videos_from=sim)`` makes the other one serve ``sim``'s videos.

Submits with a ``cache_key`` header go through FastRouter's response cache,
as documented: the same request with the same key answers the same task id
and is not billed (see ``docs/testing.md``)::

    sim.records.billed_jobs               # task ids of every billed job
    sim.records.cache_hits                # [(cache_key, task_id), ...]: free answers
    sim.billed_count(prompt="a cat")      # billed jobs for a request
    sim.cache_stats()                     # also GET /_simulator/cache

``sim.app()`` returns a plain ``aiohttp.web.Application`` to mount or run
yourself, and ``python -m fastrouter_async.testing --port 8000`` serves one
from the command line.
"""

from ._assets import sample_video
from ._durations import RealisticDurations
from ._plans import Fault, JobPlan
from ._records import RecordedRequest, SimulatedJob, SimulatorRecords
from ._simulator import FastRouterSimulator, SimulatorServer

__all__ = [
    "FastRouterSimulator",
    "Fault",
    "JobPlan",
    "RealisticDurations",
    "RecordedRequest",
    "SimulatedJob",
    "SimulatorRecords",
    "SimulatorServer",
    "sample_video",
]
