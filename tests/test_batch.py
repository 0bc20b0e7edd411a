"""session.generate_many: outcomes in completion order, the jobs cap, and the journal's resume rules."""

from __future__ import annotations

import hashlib
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import pytest

from fastrouter_async import (
    APIStatusError,
    BatchOutcome,
    FastRouterSession,
    InvalidRequestError,
    JobFailedError,
    JournalError,
    OutcomeStatus,
    ReplayPolicy,
    SubmitUncertainError,
    VideoRequest,
    read_journal,
)
from fastrouter_async.testing import FastRouterSimulator, Fault, JobPlan, sample_video

from .conftest import API_KEY, SessionFactory

SAMPLE_SHA = hashlib.sha256(sample_video()).hexdigest()


def requests(n: int, model: str = "google/veo3") -> list[dict[str, Any]]:
    return [{"model": model, "prompt": f"scene number {i}", "length": 8} for i in range(n)]


async def run(session: FastRouterSession, reqs: Any, **options: Any) -> list[BatchOutcome]:
    async with session.generate_many(reqs, **options) as batch:
        return [outcome async for outcome in batch]


def submitted_prompts(sim: FastRouterSimulator) -> Counter[str]:
    return Counter(job.prompt for job in sim.jobs.values())


async def test_two_hundred_jobs_under_a_cap_of_ten(
    make_session: SessionFactory, sim: FastRouterSimulator, tmp_path: Path
) -> None:
    """200 jobs with a cap of 10: never more than 10 in flight on the server, all 200 files arrive intact."""
    session = make_session(max_concurrent_jobs=10)
    sim.default_plan = JobPlan(polls=3)
    outcomes = await run(session, requests(200), output_dir=tmp_path)
    assert len(outcomes) == 200
    assert all(o.ok for o in outcomes)
    assert sim.records.max_in_flight == 10
    assert sim.records.jobs_created == 200
    assert sorted(o.index for o in outcomes) == list(range(200))
    files = sorted(tmp_path.glob("*.mp4"))
    assert len(files) == 200
    assert all(hashlib.sha256(f.read_bytes()).hexdigest() == SAMPLE_SHA for f in files)
    assert all(o.file is not None and o.file.sha256 == SAMPLE_SHA for o in outcomes)
    assert outcomes[0].file is not None
    assert outcomes[0].file.path.parent == tmp_path


async def test_outcomes_come_in_completion_order(make_session: SessionFactory, sim: FastRouterSimulator) -> None:
    """A quick job submitted last is reported before slow jobs submitted first."""
    session = make_session()
    sim.plan_for("slow", JobPlan(polls=8))
    sim.plan_for("quick", JobPlan(polls=1))
    reqs = [{"model": "google/veo3", "prompt": f"slow {i}"} for i in range(3)]
    reqs.append({"model": "google/veo3", "prompt": "quick one"})
    outcomes = await run(session, reqs)
    assert outcomes[0].index == 3
    assert outcomes[0].request.prompt == "quick one"


async def test_a_failing_job_does_not_stop_the_others(
    make_session: SessionFactory, sim: FastRouterSimulator, tmp_path: Path
) -> None:
    """One job failing upstream yields a FAILED outcome with its error; the rest succeed."""
    session = make_session(max_concurrent_jobs=2)
    sim.plan_for("number 2", JobPlan(outcome="failed", error="content policy"))
    outcomes = await run(session, requests(5), output_dir=tmp_path)
    failed = [o for o in outcomes if not o.ok]
    assert [o.index for o in failed] == [2]
    assert isinstance(failed[0].error, JobFailedError)
    assert "content policy" in str(failed[0].error)
    assert failed[0].task_id is not None
    assert sum(o.ok for o in outcomes) == 4
    assert len(list(tmp_path.glob("*.mp4"))) == 4


async def test_progress_counts_add_up(make_session: SessionFactory, sim: FastRouterSimulator) -> None:
    """progress reports the totals while the batch runs and at the end."""
    session = make_session(max_concurrent_jobs=3)
    sim.plan_for("number 1", JobPlan(outcome="failed", error="nope"))
    async with session.generate_many(requests(6)) as batch:
        assert batch.progress.waiting == 6
        seen = [(o, batch.progress) async for o in batch]
    final = seen[-1][1]
    assert (final.succeeded, final.failed, final.waiting, final.running) == (5, 1, 0, 0)
    assert final.finished == final.total == 6
    assert all(p.running + p.submitting + p.downloading <= 3 for _, p in seen)


async def test_invalid_request_anywhere_sends_nothing(make_session: SessionFactory, sim: FastRouterSimulator) -> None:
    """A bad request at position 3 raises InvalidRequestError before any submit, naming the position."""
    session = make_session()
    reqs = requests(5)
    reqs[3]["length"] = 99
    with pytest.raises(InvalidRequestError) as caught:
        session.generate_many(reqs)
    assert caught.value.field == "length"
    assert any("#3" in note for note in caught.value.__notes__)
    assert sim.records.submit_count == 0


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"timeout": -1}, "timeout"),
        ({"filename": "x.mp4"}, "filename"),
        ({"journal": 3}, "journal"),
        ({"output_dir": 3}, "output_dir"),
    ],
)
async def test_bad_options_are_refused(session: FastRouterSession, options: dict[str, Any], field: str) -> None:
    """Bad generate_many options raise InvalidRequestError naming them."""
    with pytest.raises(InvalidRequestError) as caught:
        session.generate_many(requests(1), **options)
    assert caught.value.field == field


async def test_a_string_is_not_a_batch(session: FastRouterSession) -> None:
    """Passing one prompt string instead of a list of requests is refused."""
    with pytest.raises(InvalidRequestError) as caught:
        session.generate_many("a cat")  # type: ignore[arg-type]
    assert caught.value.field == "requests"


async def test_video_requests_and_custom_file_names(
    make_session: SessionFactory, sim: FastRouterSimulator, tmp_path: Path
) -> None:
    """VideoRequest objects are accepted and filename(index, request) names the files."""
    session = make_session()
    reqs = [VideoRequest(model="google/veo3", prompt=f"p{i}") for i in range(2)]
    outcomes = await run(session, reqs, output_dir=tmp_path, filename=lambda i, r: f"clip-{i}.mp4")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip-0.mp4", "clip-1.mp4"]
    assert all(o.ok for o in outcomes)


async def test_existing_foreign_file_is_not_overwritten(
    make_session: SessionFactory, sim: FastRouterSimulator, tmp_path: Path
) -> None:
    """A file already at the target name that this batch did not write is kept; the video gets the next name."""
    session = make_session()
    (tmp_path / "0001-scene-number-0.mp4").write_bytes(b"precious")
    outcomes = await run(session, requests(1), output_dir=tmp_path)
    assert (tmp_path / "0001-scene-number-0.mp4").read_bytes() == b"precious"
    assert outcomes[0].file is not None
    assert outcomes[0].file.path.name == "0001-scene-number-0-2.mp4"


# --- the journal --------------------------------------------------------------------------------


async def test_rerun_of_a_finished_batch_requests_nothing(
    make_session: SessionFactory, sim: FastRouterSimulator, tmp_path: Path
) -> None:
    """With a journal, running a finished batch again skips every job after checking its file."""
    journal = tmp_path / "journal.sqlite"
    first = await run(make_session(), requests(6), output_dir=tmp_path / "out", journal=journal)
    assert all(o.ok for o in first)
    sim.reset_records()
    second = await run(make_session(), requests(6), output_dir=tmp_path / "out", journal=journal)
    assert sim.records.submit_count == 0
    assert sim.records.polls == []
    assert all(o.ok and o.from_journal for o in second)
    assert {o.file.sha256 for o in second if o.file} == {SAMPLE_SHA}
    assert {o.task_id for o in second} == {o.task_id for o in first}


async def test_missing_file_is_fetched_again_without_resubmitting(
    make_session: SessionFactory, sim: FastRouterSimulator, tmp_path: Path
) -> None:
    """A finished job whose file was deleted or damaged is re-attached and downloaded again, never resubmitted."""
    journal = tmp_path / "journal.sqlite"
    out = tmp_path / "out"
    first = await run(make_session(), requests(3), output_dir=out, journal=journal)
    gone = first[0].file
    damaged = first[1].file
    assert gone is not None
    assert damaged is not None
    gone.path.unlink()
    damaged.path.write_bytes(b"not the video")
    sim.reset_records()
    second = await run(make_session(), requests(3), output_dir=out, journal=journal)
    assert sim.records.submit_count == 0
    assert len(sim.records.polls) == 2
    by_index = {o.index: o for o in second}
    assert by_index[first[0].index].resumed
    assert gone.path.read_bytes() == sample_video()
    assert damaged.path.read_bytes() == sample_video()
    assert sum(o.from_journal for o in second) == 1


async def test_interrupted_batch_resumes_without_resubmitting(
    make_session: SessionFactory, sim: FastRouterSimulator, tmp_path: Path
) -> None:
    """Stopping a batch midway, then re-running it: submitted jobs are re-attached, each prompt submitted once."""
    journal = tmp_path / "journal.sqlite"
    sim.default_plan = JobPlan(polls=40)  # slow, so the first run stops with jobs in flight
    for quick in range(4):
        sim.plan_for(f"number {quick}", JobPlan(polls=1))
    session = make_session(max_concurrent_jobs=4)
    async with session.generate_many(requests(12), output_dir=tmp_path, journal=journal) as batch:
        got = []
        async for outcome in batch:
            got.append(outcome)
            if len(got) == 3:
                break
    created_then = sim.records.jobs_created
    assert 3 < created_then < 12
    second = await run(make_session(max_concurrent_jobs=4), requests(12), output_dir=tmp_path, journal=journal)
    assert all(o.ok for o in second)
    assert sum(o.resumed for o in second) > 0
    assert sum(o.from_journal for o in second) >= 3
    assert sum(o.resumed or o.from_journal for o in second) == created_then
    assert set(submitted_prompts(sim).values()) == {1}
    assert len(submitted_prompts(sim)) == 12
    assert len(list(tmp_path.glob("*.mp4"))) == 12


async def test_identical_requests_at_different_positions_are_different_jobs(
    make_session: SessionFactory, sim: FastRouterSimulator, tmp_path: Path
) -> None:
    """The same prompt twice is two jobs; a re-run still knows both apart and submits neither again."""
    journal = tmp_path / "journal.sqlite"
    same = {"model": "google/veo3", "prompt": "twice"}
    reqs = [same, {"model": "google/veo3", "prompt": "once"}, same]
    first = await run(make_session(), reqs, output_dir=tmp_path, journal=journal)
    assert sim.records.jobs_created == 3
    assert len({o.task_id for o in first}) == 3
    sim.reset_records()
    second = await run(make_session(), reqs, output_dir=tmp_path, journal=journal)
    assert sim.records.submit_count == 0
    assert {o.index: o.task_id for o in second} == {o.index: o.task_id for o in first}


async def test_inserting_a_line_does_not_resubmit_the_others(
    make_session: SessionFactory, sim: FastRouterSimulator, tmp_path: Path
) -> None:
    """Jobs are known by their request, not their line: a new first line submits one job, not all."""
    journal = tmp_path / "journal.sqlite"
    await run(make_session(), requests(4), journal=journal)
    sim.reset_records()
    grown = [{"model": "google/veo3", "prompt": "a new first line"}, *requests(4)]
    outcomes = await run(make_session(), grown, journal=journal)
    assert sim.records.submit_count == 1
    assert [o.index for o in outcomes if not o.from_journal] == [0]


async def test_uncertain_submit_is_reported_and_left_alone(
    make_session: SessionFactory, sim: FastRouterSimulator, tmp_path: Path
) -> None:
    """With replays off, a submit whose answer was lost is UNCERTAIN, and re-runs leave it alone unless told to."""
    journal = tmp_path / "journal.sqlite"
    sim.plan_for("number 1", JobPlan(polls=1))
    sim.inject(Fault.drop(route="submit", after_processing=True, skip=1))
    no_replays = ReplayPolicy(enabled=False)
    first = await run(make_session(max_concurrent_jobs=1, replay_policy=no_replays), requests(3), journal=journal)
    uncertain = [o for o in first if o.status is OutcomeStatus.UNCERTAIN]
    assert [o.index for o in uncertain] == [1]
    assert isinstance(uncertain[0].error, SubmitUncertainError)
    assert sim.records.jobs_created == 3  # the server did create it

    second = await run(make_session(), requests(3), journal=journal)
    assert [o.status for o in sorted(second, key=lambda o: o.index)] == [
        OutcomeStatus.SUCCEEDED,
        OutcomeStatus.UNCERTAIN,
        OutcomeStatus.SUCCEEDED,
    ]
    assert sim.records.jobs_created == 3

    third = await run(make_session(replay_policy=no_replays), requests(3), journal=journal, resubmit_uncertain=True)
    assert all(o.ok for o in third)
    assert submitted_prompts(sim)["scene number 1"] == 2  # the user chose to risk a duplicate


async def test_failed_jobs_are_reported_again_unless_retried(
    make_session: SessionFactory, sim: FastRouterSimulator, tmp_path: Path
) -> None:
    """A job that failed is not resubmitted by a re-run, unless retry_failed=True."""
    journal = tmp_path / "journal.sqlite"
    sim.plan_next(JobPlan(outcome="failed", error="upstream 500"))
    first = await run(make_session(), requests(1), journal=journal)
    assert first[0].status is OutcomeStatus.FAILED
    second = await run(make_session(), requests(1), journal=journal)
    assert second[0].status is OutcomeStatus.FAILED
    assert second[0].from_journal
    assert "upstream 500" in str(second[0].error)
    assert sim.records.jobs_created == 1
    third = await run(make_session(), requests(1), journal=journal, retry_failed=True)
    assert third[0].ok
    assert sim.records.jobs_created == 2


async def test_refused_submit_is_submitted_again_next_run(
    make_session: SessionFactory, sim: FastRouterSimulator, tmp_path: Path
) -> None:
    """A submit the server refused created nothing, so the next run submits it."""
    journal = tmp_path / "journal.sqlite"
    sim.inject(Fault.status(400, route="submit"))
    first = await run(make_session(), requests(1), journal=journal)
    assert first[0].status is OutcomeStatus.FAILED
    assert sim.records.jobs_created == 0
    second = await run(make_session(), requests(1), journal=journal)
    assert second[0].ok
    assert sim.records.jobs_created == 1


async def test_journal_records_each_jobs_life_and_never_the_key(
    make_session: SessionFactory, sim: FastRouterSimulator, tmp_path: Path
) -> None:
    """The journal holds intent, task id, status words and the file, and no trace of the API key."""
    journal = tmp_path / "journal.sqlite"
    sim.default_plan = JobPlan(polls=3)
    outcomes = await run(make_session(), requests(2), output_dir=tmp_path / "out", journal=journal)
    with sqlite3.connect(journal) as db:
        rows = db.execute("SELECT state, task_id, file_path, file_size, file_sha256, position FROM jobs").fetchall()
        events = [e for (e,) in db.execute("SELECT event FROM events ORDER BY id")]
    db.close()
    assert sorted(r[5] for r in rows) == [0, 1]
    assert {r[0] for r in rows} == {"succeeded"}
    assert {r[1] for r in rows} == {o.task_id for o in outcomes}
    assert {r[4] for r in rows} == {SAMPLE_SHA}
    assert {r[3] for r in rows} == {len(sample_video())}
    for event in ("submitting", "submitted", "status", "succeeded", "file"):
        assert event in events
    assert events.index("submitting") < events.index("submitted")
    for path in tmp_path.glob("journal.sqlite*"):
        assert API_KEY.encode() not in path.read_bytes()


async def test_a_journal_in_use_is_refused(make_session: SessionFactory, tmp_path: Path) -> None:
    """Two runs cannot share a journal: the second gets JournalError before sending anything."""
    journal = tmp_path / "journal.sqlite"
    async with make_session().generate_many(requests(1), journal=journal):
        with pytest.raises(JournalError, match="in use"):
            async with make_session().generate_many(requests(1), journal=journal):
                pass


async def test_a_folder_is_not_a_journal(session: FastRouterSession, tmp_path: Path) -> None:
    """A journal path that is a directory is refused with a suggestion."""
    with pytest.raises(JournalError, match="directory"):
        async with session.generate_many(requests(1), journal=tmp_path):
            pass


async def test_closing_the_session_closes_an_abandoned_batch(
    make_session: SessionFactory, sim: FastRouterSimulator, tmp_path: Path
) -> None:
    """A batch left mid-iteration is stopped by session.aclose(), its journal released and consistent."""
    journal = tmp_path / "journal.sqlite"
    sim.default_plan = JobPlan(polls=50)
    session = make_session(max_concurrent_jobs=2)
    batch = session.generate_many(requests(5), journal=journal)
    await batch.__aenter__()
    await session.aclose()
    with sqlite3.connect(journal) as db:
        states = Counter(state for (state,) in db.execute("SELECT state FROM jobs"))
    db.close()
    assert set(states) <= {"submitted", "not_sent"}
    async with make_session().generate_many(requests(5), journal=journal) as again:
        assert again.total == 5  # the lock was released


async def test_jobs_given_one_name_do_not_overwrite_each_other(
    make_session: SessionFactory, sim: FastRouterSimulator, tmp_path: Path
) -> None:
    """A filename() that names every job alike still gives each video its own file."""
    session = make_session(max_concurrent_jobs=4)
    outcomes = await run(session, requests(4), output_dir=tmp_path, filename=lambda i, r: "same.mp4")
    names = sorted(o.file.path.name for o in outcomes if o.file)
    assert names == ["same-2.mp4", "same-3.mp4", "same-4.mp4", "same.mp4"]


def _raises(index: int, request: VideoRequest) -> str:
    if index == 2:
        raise KeyError("no name for this one")
    return f"clip-{index}.mp4"


@pytest.mark.parametrize(
    ("namer", "shown"),
    [
        pytest.param(lambda i, r: "sub/bad.mp4" if i == 2 else f"c{i}.mp4", "'sub/bad.mp4'", id="separator"),
        pytest.param(lambda i, r: "../x.mp4" if i == 2 else f"c{i}.mp4", "'../x.mp4'", id="parent"),
        pytest.param(lambda i, r: "/tmp/x.mp4" if i == 2 else f"c{i}.mp4", "'/tmp/x.mp4'", id="absolute"),
        pytest.param(lambda i, r: 7 if i == 2 else f"c{i}.mp4", "7", id="not-a-string"),
        pytest.param(_raises, "KeyError", id="callback-raises"),
    ],
)
async def test_bad_file_names_are_refused_before_any_submit(
    make_session: SessionFactory, sim: FastRouterSimulator, tmp_path: Path, namer: Any, shown: str
) -> None:
    """Every filename() is evaluated and checked up front: a bad one is InvalidRequestError naming index and value."""
    session = make_session()
    with pytest.raises(InvalidRequestError) as caught:
        session.generate_many(requests(4), output_dir=tmp_path, filename=namer, journal=tmp_path / "j.sqlite")
    assert caught.value.field == "filename[2]"
    assert shown in str(caught.value)
    assert "plain file name" in caught.value.allowed
    assert sim.records.submit_count == 0
    assert not (tmp_path / "j.sqlite").exists()


async def test_duplicate_names_are_decided_up_front_in_input_order(
    make_session: SessionFactory, sim: FastRouterSimulator, tmp_path: Path
) -> None:
    """Jobs given one name get name, name-2, ... by input position (case-insensitively), whatever ends first."""
    sim.plan_for(lambda body: body.get("prompt") == "scene number 0", JobPlan(polls=5))
    session = make_session(max_concurrent_jobs=4)
    outcomes = await run(
        session, requests(3), output_dir=tmp_path, filename=lambda i, r: "Same.mp4" if i == 1 else "same.mp4"
    )
    names = {o.index: o.file.path.name for o in outcomes if o.file}
    assert names == {0: "same.mp4", 1: "Same-2.mp4", 2: "same-3.mp4"}


async def test_a_file_written_but_not_recorded_is_reused_not_duplicated(
    make_session: SessionFactory, sim: FastRouterSimulator, tmp_path: Path
) -> None:
    """A video on disk whose size and sha256 never reached the journal is fetched again onto the same path."""
    journal = tmp_path / "journal.sqlite"
    out = tmp_path / "out"
    first = await run(make_session(), requests(2), output_dir=out, journal=journal)
    with sqlite3.connect(journal) as db:  # as if the run died between the rename and the record
        db.execute("UPDATE jobs SET file_size = NULL, file_sha256 = NULL")
    db.close()
    sim.reset_records()
    second = await run(make_session(), requests(2), output_dir=out, journal=journal)
    assert sim.records.submit_count == 0
    assert sorted(p.name for p in out.glob("*.mp4")) == sorted(o.file.path.name for o in first if o.file)
    assert all(o.ok and o.resumed and o.file is not None and o.file.sha256 == SAMPLE_SHA for o in second)


async def test_a_task_the_server_no_longer_knows_is_failed_not_stuck(
    make_session: SessionFactory, sim: FastRouterSimulator, tmp_path: Path
) -> None:
    """A re-attached task answering 404 long after its submit is recorded failed; retry_failed submits it anew."""
    journal = tmp_path / "journal.sqlite"
    await run(make_session(), requests(1), journal=journal)
    with sqlite3.connect(journal) as db:  # as if the run had stopped long ago with the job in flight
        db.execute("UPDATE jobs SET state = 'submitted', task_id = 'fr_GONE', status = NULL")
        db.execute("UPDATE events SET at = 0 WHERE event = 'submitted'")
    db.close()
    second = await run(make_session(), requests(1), journal=journal)
    assert second[0].status is OutcomeStatus.FAILED
    assert second[0].resumed
    assert "no longer knows task fr_GONE" not in str(second[0].error)  # the error is the server's 404
    third = await run(make_session(), requests(1), journal=journal)
    assert third[0].from_journal
    assert "no longer knows task fr_GONE" in str(third[0].error)
    assert sim.records.jobs_created == 1
    fourth = await run(make_session(), requests(1), journal=journal, retry_failed=True)
    assert fourth[0].ok
    assert sim.records.jobs_created == 2


@pytest.mark.parametrize("code", [401, 402, 403])
async def test_an_account_error_stops_all_further_submits(
    make_session: SessionFactory, sim: FastRouterSimulator, tmp_path: Path, code: int
) -> None:
    """The first 401/402/403 on a submit stops the batch's submits; running jobs still end; the rest are NOT_SENT."""
    sim.default_plan = JobPlan(polls=4)
    sim.inject(Fault.status(code, route="submit", times=None, skip=3))
    session = make_session(max_concurrent_jobs=4)
    journal = tmp_path / "journal.sqlite"
    async with session.generate_many(requests(20), output_dir=tmp_path, journal=journal) as batch:
        outcomes = [outcome async for outcome in batch]
    assert len(outcomes) == 20
    by_status = Counter(o.status for o in outcomes)
    assert by_status == {OutcomeStatus.SUCCEEDED: 3, OutcomeStatus.NOT_SENT: 17}
    assert sim.records.submit_count == 4  # three accepted, one refused: nothing after the refusal
    assert isinstance(batch.stopped_by, APIStatusError)
    assert batch.stopped_by.status_code == code
    assert all(o.error is batch.stopped_by for o in outcomes if o.status is OutcomeStatus.NOT_SENT and o.index > 3)
    assert batch.progress.not_sent == 17
    assert batch.progress.finished == 20

    sim.clear_faults()  # the key is fixed: a plain re-run submits exactly the 17 never sent
    again = await run(make_session(max_concurrent_jobs=4), requests(20), output_dir=tmp_path, journal=journal)
    assert all(o.ok for o in again)
    assert sim.records.submit_count == 4 + 17
    assert sim.records.jobs_created == 20


async def test_a_batch_without_account_errors_has_no_stop(session: FastRouterSession, sim: FastRouterSimulator) -> None:
    """A 400 refusal fails its own job only: the batch goes on and stopped_by stays None."""
    sim.inject(Fault.status(400, route="submit", times=1))
    async with session.generate_many(requests(3)) as batch:
        outcomes = [outcome async for outcome in batch]
    assert Counter(o.status for o in outcomes) == {OutcomeStatus.SUCCEEDED: 2, OutcomeStatus.FAILED: 1}
    assert batch.stopped_by is None


async def test_read_journal_while_running_and_jobs_of_other_batches(
    make_session: SessionFactory, sim: FastRouterSimulator, tmp_path: Path
) -> None:
    """batch.read_journal() reads a journal in use: task ids by index, and the jobs of another batch apart."""
    journal = tmp_path / "journal.sqlite"
    await run(make_session(), requests(2), journal=journal)  # an earlier batch of other requests
    sim.default_plan = JobPlan(polls=10**6)  # never ends while the test looks
    session = make_session()
    reqs = [{"model": "google/veo3", "prompt": "another one", "length": 8}]
    async with session.generate_many(reqs, journal=journal) as batch:
        while batch.progress.running < 1:
            await anyio.sleep(0.001)
        view = await batch.read_journal()
    assert view.jobs[0].task_id in sim.jobs
    assert (view.jobs[0].state, view.jobs[0].running, view.jobs[0].prompt) == ("submitted", True, "another one")
    assert sorted(record.prompt or "" for record in view.others) == ["scene number 0", "scene number 1"]
    assert all(record.state == "succeeded" and record.submitted for record in view.others)
    assert [record.position for record in read_journal(journal)] == [0, 0, 1]
