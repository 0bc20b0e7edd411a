"""What each job of a batch needs this run, decided from its journal record: submit, replay, attach, report.

A job whose earlier submit has an unknown outcome (the run died while it was on its way, or its
answer was lost) is **replayed**: sent again with the cache key recorded for it and an identical
body, while its first attempt is younger than the session's replay window. FastRouter's response
cache answers a replay with the task the first attempt created (unbilled), or creates the job now
if the first attempt never arrived: either way the job exists once. Past the window (or without a
recorded key, e.g. a journal of an older version) it stays uncertain unless the user asks to
resubmit it, which reuses its key too.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from typing import Any

import attrs

from ._batch_keys import batch_job_key
from ._journal import JobKey, JournalEntry, JournalState
from ._models import SubmitEstimate, VideoRequest

__all__ = ["Action", "Item", "KeyContext", "Why", "decide", "past_window", "replay_expired"]


class Action(enum.Enum):
    SUBMIT = "submit"  # first attempt, a replay of an uncertain one, or a resubmit
    ATTACH = "attach"
    REPORT = "report"  # known from the journal: nothing to request
    VERIFY = "verify"  # finished earlier: report it once its file is checked, else fetch it again


class Why(enum.Enum):
    """Why a job is reported without a request (``REPORT``), or why it is sent (``SUBMIT``)."""

    NEW = "new"
    REPLAY = "replay"  # an uncertain submit inside the window: re-sent with its recorded key
    RESUBMIT = "resubmit"  # an uncertain submit re-sent because the user asked
    RETRY = "retry"  # a failed job, submitted again as a new generation with a new key
    UNCERTAIN = "uncertain"
    FAILED = "failed"
    SUCCEEDED = "succeeded"
    RUNNING = "running"


@attrs.define(eq=False)
class Item:
    """One job of the batch, and what this run does with it."""

    index: int
    request: VideoRequest
    body: Mapping[str, Any]
    key: JobKey
    entry: JournalEntry | None = None
    action: Action = Action.SUBMIT
    why: Why = Why.NEW
    cache_key: str | None = None
    """The key its submits carry this run (``None``: no key, or a fresh one made by the session)."""
    generation: int = 0
    first_attempt_at: float | None = None
    """Wall-clock time of the first attempt of this generation (set before the first send)."""
    uncertain_reason: str | None = None
    found_again: bool | None = None
    """Whether its task was found again by a replay (from the journal, or from this run's submit)."""
    estimate: SubmitEstimate | None = None
    estimated_usd: float | None = None
    """Its estimate before sending (``session.estimate``; ``None``: unknown price)."""
    reserved_usd: float | None = None
    """What a spend cap reserved for it before its submit (recorded with the intent to submit)."""
    outcome: Any = None  # the BatchOutcome of a REPORT item, made by the batch


@attrs.frozen(kw_only=True)
class KeyContext:
    """What the keys of a batch are made from, and the replay settings of its session."""

    namespace: str | None
    """``None``: the batch has no identity (no journal, no output folder): each job gets a fresh key."""
    enabled: bool
    window: float
    now: float


def _key(item: Item, context: KeyContext, generation: int) -> str | None:
    if item.request.cache_key is not None:
        return item.request.cache_key  # the user's own key for this job (sent even with replays off)
    if not context.enabled:
        return None
    if context.namespace is None:
        return None  # the session makes a fresh one
    return batch_job_key(
        namespace=context.namespace,
        fingerprint=item.key.fingerprint,
        occurrence=item.key.occurrence,
        generation=generation,
    )


def _submit(item: Item, context: KeyContext, why: Why, generation: int, key: str | None = None) -> None:
    item.found_again = item.estimate = None
    item.action = Action.SUBMIT
    item.why = why
    item.generation = generation
    item.cache_key = key if key is not None else _key(item, context, generation)


def decide(
    item: Item,
    entry: JournalEntry | None,
    context: KeyContext,
    *,
    resubmit_uncertain: bool,
    retry_failed: bool,
    downloads: bool,
) -> None:
    """Set ``item``'s action, key and generation from its journal ``entry`` (``None``: never recorded)."""
    item.entry = entry
    if entry is not None:  # what the journal knows of the job so far (a new submit starts afresh)
        item.cache_key, item.generation, item.found_again = entry.cache_key, entry.generation, entry.found_again
        if entry.estimate_credits is not None or entry.estimate_usd is not None:
            item.estimate = SubmitEstimate(credits=entry.estimate_credits, usd=entry.estimate_usd)
    if entry is None:
        _submit(item, context, Why.NEW, 0)
    elif entry.state is JournalState.NOT_SENT:
        # Nothing was created: a new first attempt, with the key recorded for it if there is one.
        recorded = item.request.cache_key or entry.cache_key
        _submit(item, context, Why.NEW, entry.generation, recorded if context.enabled else None)
    elif entry.state in (JournalState.SUBMITTING, JournalState.UNCERTAIN):
        _uncertain(item, entry, context, resubmit_uncertain=resubmit_uncertain)
    elif entry.state is JournalState.FAILED:
        if retry_failed:
            # A new job: the old key would only find the failed task again (or nothing).
            _submit(item, context, Why.RETRY, entry.generation + 1)
        else:
            item.action, item.why = Action.REPORT, Why.FAILED
    elif entry.state is JournalState.SUCCEEDED:
        if entry.file_path is not None:
            item.action, item.why = Action.VERIFY, Why.SUCCEEDED  # checked while the rest gets going
        elif downloads:
            item.action, item.why = Action.ATTACH, Why.SUCCEEDED  # never downloaded: a fresh poll, fresh URLs
        else:
            item.action, item.why = Action.REPORT, Why.SUCCEEDED
    else:  # SUBMITTED
        item.action, item.why = Action.ATTACH, Why.RUNNING


def _uncertain(item: Item, entry: JournalEntry, context: KeyContext, *, resubmit_uncertain: bool) -> None:
    """An earlier submit whose outcome is unknown: replay it inside the window, else leave it or resubmit it."""
    first = entry.first_attempt_at
    age = None if first is None else context.now - first
    if context.enabled and entry.cache_key is not None and age is not None and age < context.window:
        _submit(item, context, Why.REPLAY, entry.generation, entry.cache_key)
        item.first_attempt_at = first  # the window counts from the first attempt, not from this one
        return
    if resubmit_uncertain:
        # The user's choice: sent again, with the same key if it had one (a hit is still free). The
        # window of this submit's own replays counts from now.
        _submit(item, context, Why.RESUBMIT, entry.generation, entry.cache_key if context.enabled else None)
        return
    item.action, item.why = Action.REPORT, Why.UNCERTAIN
    if not context.enabled:
        item.uncertain_reason = None
    elif entry.cache_key is None:
        item.uncertain_reason = "no cache key was recorded for it, so it cannot be sent again safely"
    elif age is not None:
        item.uncertain_reason = past_window(item, window=context.window, now=context.now, first=first)


def replay_expired(item: Item, *, window: float, now: float) -> bool:
    """Whether a replay planned for ``item`` would now go out past the window (it waited too long for a slot)."""
    return item.first_attempt_at is None or now - item.first_attempt_at >= window


def past_window(item: Item, *, window: float, now: float, first: float | None = None) -> str:
    """Why an unknown submit is not replayed: its first attempt is older than the replay window."""
    first = item.first_attempt_at if first is None else first
    age = now - first if first is not None else math.inf
    return f"its first attempt was {age:.0f} s ago, past the replay window of {window:.0f} s"
