"""Exactly-once batches: a cache key per job, replays of unknown submits on re-runs, accounting, old journals."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from fastrouter_async import (
    BatchOutcome,
    FastRouterSession,
    OutcomeStatus,
    ReplayPolicy,
    SubmitUncertainError,
    VideoRequest,
    read_journal,
)
from fastrouter_async._batch_keys import batch_job_key, batch_namespace, request_fingerprint
from fastrouter_async._batch_plan import Action, Item, KeyContext, Why, decide, replay_expired
from fastrouter_async._journal import JobKey, Journal, JournalEntry, JournalState
from fastrouter_async.testing import FastRouterSimulator, Fault, JobPlan

from .conftest import SessionFactory

NO_REPLAYS_NOW = ReplayPolicy(max_replays=0)
# The submit's own replays are off, so a lost answer ends the run's attempt UNCERTAIN: what a crash
# mid-exchange leaves behind, for the next run to replay.
PAST_THE_WINDOW = ReplayPolicy(window=0.001, max_replays=0)
# A window one millisecond long: every earlier attempt is past it by the time the batch plans.


def requests(n: int) -> list[dict[str, Any]]:
    return [{"model": "google/veo3", "prompt": f"scene number {i}", "length": 8} for i in range(n)]


async def run(session: FastRouterSession, reqs: Any, **options: Any) -> list[BatchOutcome]:
    async with session.generate_many(reqs, **options) as batch:
        return sorted([outcome async for outcome in batch], key=lambda outcome: outcome.index)


def key_headers(sim: FastRouterSimulator) -> list[str | None]:
    """The ``cache_key`` header of every submit the simulator saw, in order."""
    return [record.headers.get("cache_key") for record in sim.records.submits]


def journal_rows(path: Path) -> list[dict[str, Any]]:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        db.row_factory = sqlite3.Row
        rows = [dict(row) for row in db.execute("SELECT * FROM jobs ORDER BY position")]
    db.close()
    return rows


# -- keys ------------------------------------------------------------------------------------------------


def test_keys_come_from_the_batch_and_the_job(tmp_path: Path) -> None:
    """Same journal path, same job: same key; another path, occurrence or generation: another key."""
    fingerprint = request_fingerprint({"model": "google/veo3", "prompt": "a cat"})
    here = batch_namespace(journal=tmp_path / "journal.sqlite", output_dir=None)
    assert here == batch_namespace(journal=tmp_path / "." / "journal.sqlite", output_dir=tmp_path / "elsewhere")
    assert here != batch_namespace(journal=tmp_path / "other.sqlite", output_dir=None)
    assert here != batch_namespace(journal=None, output_dir=tmp_path / "journal.sqlite")
    assert batch_namespace(journal=None, output_dir=None) is None
    assert here is not None
    key = batch_job_key(namespace=here, fingerprint=fingerprint, occurrence=0, generation=0)
    assert key == batch_job_key(namespace=here, fingerprint=fingerprint, occurrence=0, generation=0)
    others = {
        batch_job_key(namespace=here, fingerprint=fingerprint, occurrence=1, generation=0),
        batch_job_key(namespace=here, fingerprint=fingerprint, occurrence=0, generation=1),
        batch_job_key(namespace=here, fingerprint=fingerprint[::-1], occurrence=0, generation=0),
    }
    assert key not in others
    assert len(others) == 3
    assert key.startswith("fra1:j:")
    assert len(key) <= 128


def test_the_fingerprint_ignores_the_cache_object() -> None:
    """The request's fingerprint is over the generation body only: the ``cache`` object never changes it."""
    body = {"model": "google/veo3", "prompt": "a cat", "length": 8}
    assert request_fingerprint(body) == request_fingerprint({**body, "cache": {"expiration_time": 60}})
    assert request_fingerprint(body) != request_fingerprint({**body, "length": 4})


def _entry(state: JournalState, *, key: str | None = "fra1:j:recorded", first: float | None = 1000.0) -> JournalEntry:
    return JournalEntry(
        key=JobKey("f" * 64, 0), position=0, model="google/veo3", state=state, task_id=None, status=None,
        error=None, cost_usd=None, file_path=None, file_size=None, file_sha256=None, submit_attempts=1,
        cache_key=key, generation=2, first_attempt_at=first,
    )  # fmt: skip


PLANS = [
    # (state, recorded key, seconds since the first attempt, enabled, resubmit_uncertain) -> (why, key, generation)
    pytest.param(JournalState.SUBMITTING, "fra1:j:recorded", 10.0, True, False, Why.REPLAY, "recorded", 2, id="replay"),
    pytest.param(
        JournalState.UNCERTAIN, "fra1:j:recorded", 10.0, True, False, Why.REPLAY, "recorded", 2, id="replay-u"
    ),
    pytest.param(JournalState.SUBMITTING, "fra1:j:recorded", 60.0, True, False, Why.UNCERTAIN, None, 2, id="past"),
    pytest.param(JournalState.SUBMITTING, None, 10.0, True, False, Why.UNCERTAIN, None, 2, id="no-key"),
    pytest.param(JournalState.SUBMITTING, "fra1:j:recorded", 10.0, False, False, Why.UNCERTAIN, None, 2, id="off"),
    pytest.param(JournalState.SUBMITTING, "fra1:j:recorded", 60.0, True, True, Why.RESUBMIT, "recorded", 2, id="asked"),
    pytest.param(JournalState.SUBMITTING, None, 60.0, True, True, Why.RESUBMIT, "derived", 2, id="asked-no-key"),
    pytest.param(JournalState.NOT_SENT, "fra1:j:recorded", 60.0, True, False, Why.NEW, "recorded", 2, id="not-sent"),
    pytest.param(JournalState.FAILED, "fra1:j:recorded", 60.0, True, False, Why.RETRY, "derived", 3, id="retry"),
]


@pytest.mark.parametrize(("state", "recorded", "age", "enabled", "resubmit", "why", "key", "generation"), PLANS)
def test_the_plan_replays_inside_the_window_only(
    state: JournalState,
    recorded: str | None,
    age: float,
    enabled: bool,
    resubmit: bool,
    why: Why,
    key: str | None,
    generation: int,
) -> None:
    """Unknown submits are replayed with their recorded key inside the window only; retries get a new key."""
    item = Item(index=0, request=VideoRequest(model="google/veo3", prompt="a cat"), body={}, key=JobKey("f" * 64, 0))
    context = KeyContext(namespace="n" * 64, enabled=enabled, window=30.0, now=1000.0 + age)
    decide(item, _entry(state, key=recorded), context, resubmit_uncertain=resubmit, retry_failed=True, downloads=True)
    assert item.why is why
    assert item.generation == generation
    expected = {
        "recorded": "fra1:j:recorded",
        "derived": batch_job_key(namespace="n" * 64, fingerprint="f" * 64, occurrence=0, generation=generation),
        None: None,
    }[key]
    if why is Why.UNCERTAIN:
        assert item.action is Action.REPORT
    else:
        assert item.action is Action.SUBMIT
        assert item.cache_key == expected
    assert item.first_attempt_at == (1000.0 if why is Why.REPLAY else None)


def test_a_replay_that_waited_past_the_window_is_not_sent() -> None:
    """A replay planned inside the window but still waiting for its slot when the window closes is not sent."""
    item = Item(index=0, request=VideoRequest(model="google/veo3", prompt="a cat"), body={}, key=JobKey("f" * 64, 0))
    item.first_attempt_at = 1000.0
    assert not replay_expired(item, window=30.0, now=1029.0)
    assert replay_expired(item, window=30.0, now=1030.0)


async def test_each_job_carries_its_own_deterministic_key(
    make_session: SessionFactory, sim: FastRouterSimulator, tmp_path: Path
) -> None:
    """Every submit of a journaled batch carries a key; identical requests get different keys; the journal has them."""
    journal = tmp_path / "journal.sqlite"
    reqs = [*requests(2), requests(1)[0]]  # the first request twice: two jobs
    outcomes = await run(make_session(), reqs, journal=journal)
    keys = key_headers(sim)
    assert all(keys)
    assert len(set(keys)) == 3
    assert {o.cache_key for o in outcomes} == set(keys)
    assert all(o.found_again is False for o in outcomes)
    assert {row["cache_key"] for row in journal_rows(journal)} == set(keys)
    namespace = batch_namespace(journal=journal, output_dir=None)
    assert namespace is not None
    expected = batch_job_key(
        namespace=namespace,
        fingerprint=journal_rows(journal)[0]["fingerprint"],
        occurrence=journal_rows(journal)[0]["occurrence"],
        generation=0,
    )
    assert journal_rows(journal)[0]["cache_key"] == expected


async def test_a_request_with_its_own_cache_key_keeps_it(
    make_session: SessionFactory, sim: FastRouterSimulator, tmp_path: Path
) -> None:
    """A request's own ``cache_key`` is the one sent and journaled; the others get the batch's keys."""
    journal = tmp_path / "journal.sqlite"
    mine = VideoRequest(model="google/veo3", prompt="a cat", cache_key="my-own-key:1")
    outcomes = await run(make_session(), [mine, *requests(1)], journal=journal)
    assert "my-own-key:1" in key_headers(sim)
    assert outcomes[0].cache_key == "my-own-key:1"
    assert outcomes[1].cache_key not in (None, "my-own-key:1")
    assert journal_rows(journal)[0]["cache_key"] == "my-own-key:1"


async def test_without_a_journal_keys_come_from_the_output_folder(
    make_session: SessionFactory, sim: FastRouterSimulator, tmp_path: Path
) -> None:
    """Two runs into one folder without a journal send the same keys: the second finds every job again, unbilled."""
    first = await run(make_session(), requests(3), output_dir=tmp_path / "out")
    second = await run(make_session(), requests(3), output_dir=tmp_path / "out")
    assert [o.cache_key for o in first] == [o.cache_key for o in second]
    assert all(o.ok and o.found_again is True for o in second)
    assert [o.task_id for o in first] == [o.task_id for o in second]
    assert sim.records.billed_count == 3


async def test_without_journal_or_folder_each_run_has_fresh_keys(
    make_session: SessionFactory, sim: FastRouterSimulator
) -> None:
    """A batch with neither journal nor output folder has no identity: each job gets a fresh key, each run pays."""
    await run(make_session(), requests(2))
    await run(make_session(), requests(2))
    keys = key_headers(sim)
    assert all(keys)
    assert len(set(keys)) == 4
    assert sim.records.billed_count == 4


async def test_replays_off_send_no_key(make_session: SessionFactory, sim: FastRouterSimulator, tmp_path: Path) -> None:
    """With ``ReplayPolicy(enabled=False)`` no submit carries a key and the journal records none."""
    journal = tmp_path / "journal.sqlite"
    outcomes = await run(make_session(replay_policy=ReplayPolicy(enabled=False)), requests(2), journal=journal)
    assert key_headers(sim) == [None, None]
    assert [o.cache_key for o in outcomes] == [None, None]
    assert [row["cache_key"] for row in journal_rows(journal)] == [None, None]


# -- replays ---------------------------------------------------------------------------------------------


async def test_a_lost_answer_is_replayed_in_the_same_run(
    make_session: SessionFactory, sim: FastRouterSimulator, tmp_path: Path
) -> None:
    """A submit whose answer is lost after the job was created is re-sent at once: found again, billed once."""
    journal = tmp_path / "journal.sqlite"
    sim.inject(Fault.drop(route="submit", after_processing=True, skip=1))
    outcomes = await run(make_session(max_concurrent_jobs=1), requests(3), journal=journal)
    assert [o.status for o in outcomes] == [OutcomeStatus.SUCCEEDED] * 3
    assert [o.found_again for o in outcomes] == [False, True, False]
    assert sim.records.billed_count == 3
    assert sim.billed_count(prompt="scene number 1") == 1
    assert [hit.cache_key for hit in sim.records.cache_hits] == [outcomes[1].cache_key]
    row = journal_rows(journal)[1]
    assert (row["found_again"], row["submit_attempts"], row["state"]) == (1, 2, "succeeded")
    assert [r.found_again for r in read_journal(journal)] == [False, True, False]


async def test_a_rerun_inside_the_window_replays_an_unknown_submit(
    make_session: SessionFactory, sim: FastRouterSimulator, tmp_path: Path
) -> None:
    """An UNCERTAIN job is re-sent by the next run with its recorded key: the job is found again, never billed twice."""
    journal = tmp_path / "journal.sqlite"
    sim.inject(Fault.drop(route="submit", after_processing=True, skip=1))
    first = await run(make_session(max_concurrent_jobs=1, replay_policy=NO_REPLAYS_NOW), requests(3), journal=journal)
    assert [o.status for o in first] == [OutcomeStatus.SUCCEEDED, OutcomeStatus.UNCERTAIN, OutcomeStatus.SUCCEEDED]
    error = first[1].error
    assert isinstance(error, SubmitUncertainError)
    assert error.cache_key is not None
    recorded = journal_rows(journal)[1]
    assert (recorded["state"], recorded["cache_key"]) == ("uncertain", error.cache_key)
    assert recorded["first_attempt_at"] is not None

    second = await run(make_session(), requests(3), journal=journal)
    assert all(o.ok for o in second)
    assert second[1].found_again is True
    assert not second[1].from_journal
    assert key_headers(sim)[-1] == error.cache_key
    assert sim.records.billed_count == 3
    assert sim.billed_count(prompt="scene number 1") == 1
    row = journal_rows(journal)[1]
    assert row["first_attempt_at"] == recorded["first_attempt_at"]  # the window still counts from the first
    assert row["found_again"] == 1


async def test_a_replay_that_misses_creates_the_job_once(
    make_session: SessionFactory, sim: FastRouterSimulator, tmp_path: Path
) -> None:
    """A lost submit that never created its job is created by the re-run's replay: billed once, not found again."""
    journal = tmp_path / "journal.sqlite"
    sim.inject(Fault.drop(route="submit"))  # the connection drops before the server handles it
    first = await run(make_session(replay_policy=NO_REPLAYS_NOW), requests(1), journal=journal)
    assert first[0].status is OutcomeStatus.UNCERTAIN
    assert sim.records.billed_count == 0
    second = await run(make_session(), requests(1), journal=journal)
    assert second[0].ok
    assert second[0].found_again is False
    assert sim.records.billed_count == 1


async def test_a_refused_replay_leaves_the_job_uncertain_not_unsent(
    make_session: SessionFactory, sim: FastRouterSimulator, tmp_path: Path
) -> None:
    """A replay refused after a lost answer keeps the job UNCERTAIN (it may exist); the re-run replays and finds it."""
    journal = tmp_path / "journal.sqlite"
    sim.inject(Fault.drop(route="submit", after_processing=True))  # created, answer lost
    sim.inject(Fault.status(400, route="submit"))  # its replay refused
    first = await run(make_session(), requests(1), journal=journal)
    assert first[0].status is OutcomeStatus.UNCERTAIN
    assert "its replay created nothing" in str(first[0].error)
    assert journal_rows(journal)[0]["state"] == "uncertain"
    assert sim.records.billed_count == 1

    second = await run(make_session(), requests(1), journal=journal)
    assert second[0].ok
    assert second[0].found_again is True
    assert sim.records.billed_count == 1


async def test_past_the_window_an_unknown_submit_stays_uncertain_until_asked(
    make_session: SessionFactory, sim: FastRouterSimulator, tmp_path: Path
) -> None:
    """Past the replay window a re-run leaves the job UNCERTAIN; resubmit_uncertain re-sends it with its key."""
    journal = tmp_path / "journal.sqlite"
    sim.inject(Fault.drop(route="submit", after_processing=True))
    first = await run(make_session(replay_policy=PAST_THE_WINDOW), requests(1), journal=journal)
    assert first[0].status is OutcomeStatus.UNCERTAIN
    key = key_headers(sim)[0]

    second = await run(make_session(replay_policy=PAST_THE_WINDOW), requests(1), journal=journal)
    assert second[0].status is OutcomeStatus.UNCERTAIN
    assert "past the replay window" in str(second[0].error)
    assert sim.records.submit_count == 1  # nothing was sent

    session = make_session(replay_policy=PAST_THE_WINDOW)
    third = await run(session, requests(1), journal=journal, resubmit_uncertain=True)
    assert third[0].ok
    assert key_headers(sim) == [key, key]  # resubmitted with the same key: the job is found again
    assert third[0].found_again is True
    assert sim.records.billed_count == 1


async def test_deleting_the_journal_within_the_window_bills_nothing_twice(
    make_session: SessionFactory, sim: FastRouterSimulator, tmp_path: Path
) -> None:
    """Run, delete the journal, run the same batch into the same folder: every job is found again, none billed twice."""
    folder = tmp_path / "out"
    journal = folder / "journal.sqlite"
    first = await run(make_session(), requests(4), output_dir=folder, journal=journal)
    assert all(o.ok for o in first)
    for path in folder.glob("journal.sqlite*"):
        path.unlink()
    second = await run(make_session(), requests(4), output_dir=folder, journal=journal)
    assert all(o.ok for o in second)
    assert [o.found_again for o in second] == [True] * 4
    assert [o.task_id for o in second] == [o.task_id for o in first]
    assert sim.records.billed_count == 4
    assert len(sim.records.cache_hits) == 4


async def test_retry_failed_submits_a_new_job_with_a_new_key(
    make_session: SessionFactory, sim: FastRouterSimulator, tmp_path: Path
) -> None:
    """retry_failed re-sends a failed job with a new key (a new generation): billed again, once."""
    journal = tmp_path / "journal.sqlite"
    sim.plan_next(JobPlan(outcome="failed", error="upstream 500"))
    first = await run(make_session(), requests(1), journal=journal)
    assert first[0].status is OutcomeStatus.FAILED
    second = await run(make_session(), requests(1), journal=journal, retry_failed=True)
    assert second[0].ok
    assert second[0].found_again is False
    old_key, new_key = key_headers(sim)
    assert old_key != new_key
    assert second[0].cache_key == new_key
    assert sim.billed_count(prompt="scene number 0") == 2
    assert journal_rows(journal)[0]["generation"] == 1
    third = await run(make_session(), requests(1), journal=journal)
    assert third[0].ok
    assert third[0].from_journal
    assert sim.records.billed_count == 2


# -- accounting ------------------------------------------------------------------------------------------


async def test_outcomes_and_journal_show_the_submit_estimate(
    make_session: SessionFactory, sim: FastRouterSimulator, tmp_path: Path
) -> None:
    """The create answer's estimate is on the outcome and in the journal; a resumed run reports it from there."""
    journal = tmp_path / "journal.sqlite"
    sim.default_plan = JobPlan(polls=1, cost_usd=0.5)
    first = await run(make_session(), requests(1), journal=journal, output_dir=tmp_path / "out")
    estimate = first[0].submit_estimate
    assert estimate is not None
    assert estimate.credits == 0.5
    assert journal_rows(journal)[0]["estimate_credits"] == 0.5
    again = await run(make_session(), requests(1), journal=journal, output_dir=tmp_path / "out")
    assert again[0].from_journal
    assert again[0].submit_estimate == estimate
    assert again[0].found_again is False
    [record] = read_journal(journal)
    assert (record.estimate_credits, record.found_again, record.cache_key) == (0.5, False, first[0].cache_key)


# -- journals of the older format ------------------------------------------------------------------------

_FORMAT_1 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE jobs (
    fingerprint TEXT NOT NULL, occurrence INTEGER NOT NULL, position INTEGER NOT NULL, model TEXT NOT NULL,
    request TEXT NOT NULL, state TEXT NOT NULL, task_id TEXT, status TEXT, error TEXT, cost_usd REAL,
    file_path TEXT, file_size INTEGER, file_sha256 TEXT, submit_attempts INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL, updated_at REAL NOT NULL, PRIMARY KEY (fingerprint, occurrence)
);
CREATE TABLE events (
    id INTEGER PRIMARY KEY, fingerprint TEXT NOT NULL, occurrence INTEGER NOT NULL, at REAL NOT NULL,
    event TEXT NOT NULL, detail TEXT
);
INSERT INTO meta VALUES ('schema_version', '1');
"""


async def test_a_journal_of_the_older_format_opens_and_resumes(
    make_session: SessionFactory, sim: FastRouterSimulator, tmp_path: Path
) -> None:
    """A format-1 journal is read, upgraded in place, and resumed: running job re-attached, unknown one left alone."""
    journal = tmp_path / "journal.sqlite"
    session = make_session()
    running = await session.submit(model="google/veo3", prompt="scene number 0", length=8)
    bodies = [{"model": "google/veo3", "prompt": f"scene number {i}", "length": 8} for i in range(3)]
    with sqlite3.connect(journal) as db:
        db.executescript(_FORMAT_1)
        for position, (state, task_id) in enumerate([("submitted", running.task_id), ("submitting", None)]):
            db.execute(
                "INSERT INTO jobs (fingerprint, occurrence, position, model, request, state, task_id, submit_attempts, "
                "created_at, updated_at) VALUES (?, 0, ?, 'google/veo3', '{}', ?, ?, 1, 1.0, 1.0)",
                (request_fingerprint(bodies[position]), position, state, task_id),
            )
    db.close()
    assert [record.cache_key for record in read_journal(journal)] == [None, None]  # read before any upgrade

    outcomes = await run(make_session(), requests(3), journal=journal)
    assert [o.status for o in outcomes] == [OutcomeStatus.SUCCEEDED, OutcomeStatus.UNCERTAIN, OutcomeStatus.SUCCEEDED]
    assert outcomes[0].resumed
    assert outcomes[0].task_id == running.task_id
    assert "no cache key was recorded" in str(outcomes[1].error)
    assert sim.records.submit_count == 2  # the running job was not submitted again, the unknown one left alone
    rows = journal_rows(journal)
    assert rows[2]["cache_key"] is not None
    assert rows[0]["cache_key"] is None
    with sqlite3.connect(journal) as db:
        assert db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == ("2",)
    db.close()
    reopened = await Journal.open(journal)  # an upgraded journal opens again as it is
    await reopened.aclose()
