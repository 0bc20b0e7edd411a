"""A batch's spending: its cap (``generate_many(max_spend_usd=...)``), seeded from the journal on a re-run.

The batch keeps one :class:`SpendLedger` (with no cap, an unbounded one: the display still shows what
was spent and reserved). Each job's reservation is written to the journal with the intent to submit,
before the submit is sent; a re-run counts, before submitting anything, the final costs of the jobs
that ended and the reservations of the jobs still running or of unknown outcome. So a crash and a
re-run never take the batch over its cap: spent = final costs of this journal's jobs + reservations of
the running ones.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable

from ._batch_plan import Action, Item
from ._costs import SpendEstimate
from ._journal import JournalState
from ._spend import SpendHold, SpendLedger

__all__ = ["BatchSpend"]

_HELD = (JournalState.SUBMITTING, JournalState.SUBMITTED, JournalState.UNCERTAIN)


class BatchSpend:
    """What one batch spent, reserved and still expects to spend."""

    def __init__(self, cap_usd: float | None, estimate: SpendEstimate) -> None:
        self.ledger = SpendLedger(math.inf if cap_usd is None else cap_usd, what="generate_many max_spend_usd")
        self.capped = cap_usd is not None
        self._estimates = [each.usd for each in estimate.requests]
        self._unstarted: set[int] = set()
        self._token = object()  # one batch's jobs never share a key with another's in the session's ledger

    def key(self, item: Item) -> Hashable:
        """The job's key in the ledgers (its batch, and its journal key)."""
        return (self._token, item.key)

    def estimate_of(self, index: int) -> float | None:
        return self._estimates[index]

    def seed(self, items: Iterable[Item]) -> None:
        """Count what the journal says earlier runs spent and reserved, and which jobs are still to send."""
        for item in items:
            entry = item.entry
            if item.action is Action.SUBMIT and (entry is None or entry.state not in _HELD):
                self._unstarted.add(item.index)
            if entry is None:
                continue
            reserved = entry.reserved_usd if entry.reserved_usd is not None else self._estimates[item.index]
            if entry.state is JournalState.SUCCEEDED:
                cost = entry.cost_usd if entry.cost_usd is not None else reserved
                self.ledger.settle(self.key(item), cost or 0.0)
            elif entry.state in _HELD:  # it may exist (and be billed): reserved until it is seen to end
                self.ledger.reserve(self.key(item), reserved or 0.0, model=item.request.model, force=True)

    def recorded(self, item: Item, hold: SpendHold | None) -> None:
        """What to journal as the job's reservation: ``None`` when its price was unknown and only tallied as 0."""
        if hold is not None and (hold.usd > 0 or self._estimates[item.index] is not None):
            item.reserved_usd = hold.usd
        else:
            item.reserved_usd = None

    def started(self, index: int) -> None:
        self._unstarted.discard(index)

    def hold_for_attached(self, item: Item) -> SpendHold | None:
        """The reservation a re-attached job settles when it ends (made by ``seed``)."""
        key = self.key(item)
        usd = self.ledger.reservation(key)
        return None if usd is None else SpendHold(key=key, usd=usd, ledgers=[self.ledger])

    @property
    def spent(self) -> float:
        return self.ledger.spent

    @property
    def reserved(self) -> float:
        return self.ledger.reserved

    @property
    def rest(self) -> tuple[float, int]:
        """The estimate of the jobs not sent yet: the known total, and how many are of unknown price."""
        known = [self._estimates[i] for i in self._unstarted]
        return math.fsum(usd for usd in known if usd is not None), sum(1 for usd in known if usd is None)
