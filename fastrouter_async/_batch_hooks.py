"""Connects one submit of a batch to its journal: each attempt's intent before sending, the task id at once."""

from __future__ import annotations

import logging
import time

from ._batch_plan import Item
from ._journal import Journal, JournalError

__all__ = ["JournalHooks", "replay_refused"]

logger = logging.getLogger("fastrouter_async")


class JournalHooks:
    """The session's ``SubmitHooks`` for one job of a journaled batch."""

    def __init__(self, journal: Journal, item: Item) -> None:
        self._journal = journal
        self._item = item
        self.replayed = False
        """A replay was sent: an earlier attempt's answer was lost, so the job may exist whatever comes next."""

    async def before_send(self, attempt: int) -> None:
        """Record the attempt (its key, the time of the first attempt) durably before it is sent."""
        item = self._item
        self.replayed = self.replayed or attempt >= 1
        if item.first_attempt_at is None:
            # Taken before the send: the replay window a re-run measures from it is never longer than the real one.
            item.first_attempt_at = time.time()
        await self._journal.submitting(
            item.key,
            position=item.index,
            model=item.request.model,
            body=item.body,
            cache_key=item.cache_key,
            generation=item.generation,
            first_attempt_at=item.first_attempt_at,
            reserved_usd=item.reserved_usd,
        )

    async def accepted(self, task_id: str, *, found_again: bool | None) -> None:
        try:
            await self._journal.submitted(self._item.key, task_id, found_again=found_again)
        except JournalError:
            logger.error(  # noqa: TRY400 - the traceback adds nothing; the task id is what matters
                "could not journal task %s of request #%d; keep this id to re-attach: session.job(%r, model=%r)",
                task_id,
                self._item.index,
                task_id,
                self._item.request.model,
            )
            raise

    async def not_created(self, reason: str) -> None:
        if self.replayed:
            # This attempt created nothing, but an earlier one may have: never "not sent" (which a
            # re-run would treat as a fresh job, with a fresh replay window).
            await self._journal.uncertain(self._item.key, replay_refused(reason))
        else:
            await self._journal.not_sent(self._item.key, reason)


def replay_refused(reason: str) -> str:
    """Why a job whose replay was refused (or never sent) is still uncertain."""
    return f"an attempt's answer was lost, and its replay created nothing ({reason}): the job may exist"
