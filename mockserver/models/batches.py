"""Submitted batches and their lazily evaluated lifecycle."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any, Literal

from target_profile_mock.contracts.batch import BatchFile, BatchRows
from target_profile_mock.contracts.rules import Violation
from target_profile_mock.contracts.xmlbodies import BatchStatusToken

from ..lifecycle import Lifecycle
from .profiles import IdKind, ProfileStore

State = BatchStatusToken
RowStatus = Literal["success", "failed", "pending"]

#: Memory of one held string beyond its characters (object header, list slot), for batch estimates.
_STR_OVERHEAD = 57


def _text_bytes(items: list[Any]) -> int:
    """Estimated memory of a list of row items (encoded lines or tuples of cells) or ids."""
    total = 0
    for r in items:
        total += len(r) + _STR_OVERHEAD if r.__class__ is str else sum(map(len, r)) + _STR_OVERHEAD * (len(r) + 1)
    return total


@dataclass(eq=False)
class Batch:
    """One submitted batch. Its rows are applied to the profiles when it completes, not before."""

    batch_id: str
    tenant: str
    version: int  #: 1 or 2 (v2 creates missing profiles)
    file: BatchFile
    submitted_ms: int
    lifecycle: Lifecycle
    status_url: str
    seed: int
    polls: int = 0
    state: State = "incomplete"
    ended_ms: int | None = None
    forced: bool = False
    counters: dict[str, int] = field(default_factory=dict)
    failed_ids: list[str] = field(default_factory=list)
    lost_ids: list[str] = field(default_factory=list)
    skipped: bool = False  #: every cell was empty: nothing applied (EL-BULK 2025-10-28)
    keep_rows: bool = True  #: keep the parsed rows after applying them (small batches only)
    size: int = 0  #: rows in the file
    ids: list[str] = field(default_factory=list)  #: row ids in file order (for per-row statuses)
    #: the rows and row ids were dropped after completion to keep the fake's batch memory bounded
    details_dropped: bool = False
    rows_bytes: int = 0  #: estimated memory of the rows while held
    ids_bytes: int = 0  #: estimated memory of the row ids while held

    def __post_init__(self) -> None:
        self.size = self.file.row_count
        rows = self.file.rows
        # the parser lists the ids already; shared, not copied (they outlive the rows of a large batch)
        self.ids = rows.ids if isinstance(rows, BatchRows) else [r[0] for r in rows]
        self.rows_bytes = _text_bytes(rows.raw() if isinstance(rows, BatchRows) else rows)
        self.ids_bytes = _text_bytes(self.ids)

    @property
    def held_bytes(self) -> int:
        """Estimated memory of what the batch holds now: its rows (until applied, or kept for inspection)
        and its row ids (for per-row statuses)."""
        held = self.rows_bytes if self.file.rows else 0
        return held + (0 if self.details_dropped else self.ids_bytes)

    def drop_details(self) -> int:
        """Forget the rows and row ids of an ended batch (its state and counters stay); the bytes freed."""
        if self.state == "incomplete" or self.details_dropped:
            return 0
        freed = self.held_bytes
        self.file.rows = []
        self.ids = []
        self.details_dropped = True
        return freed

    @property
    def violations(self) -> list[Violation]:
        return self.file.violations

    def due(self, now_ms: int, *, poll: bool) -> bool:
        """Whether the batch ends at this look (``poll`` counts it as a status poll)."""
        if self.state != "incomplete" or self.forced:
            return False
        polls = self.polls + (1 if poll else 0)
        return self.lifecycle.ends(polls, (now_ms - self.submitted_ms) / 1000)

    def due_ms(self) -> int | None:
        """When the clock alone ends this batch (epoch ms), or None when only polls or a force can."""
        if self.state != "incomplete" or self.forced:
            return None
        if self.lifecycle.mode == "immediate":
            return self.submitted_ms
        if self.lifecycle.mode == "seconds":
            return self.submitted_ms + math.ceil(self.lifecycle.seconds * 1000)
        return None

    def end(self, outcome: State, store: ProfileStore, now_ms: int) -> None:
        """End the batch; a ``complete`` batch applies its rows, exactly once."""
        if self.state != "incomplete":
            return
        self.state = outcome
        self.ended_ms = now_ms
        n = self.size
        if outcome == "stuck":
            self.counters = {"batchSize": n, "consumedCount": 0, "successfulUpdates": 0,
                             "profilesNotFound": 0, "failedUpdates": 0}
            return
        if outcome == "incomplete":
            return
        self._apply(store, now_ms)

    def _apply(self, store: ProfileStore, now_ms: int) -> None:
        rows = self.file.rows
        raw = rows.raw() if isinstance(rows, BatchRows) else rows
        ids = self.ids
        n = len(raw)
        rng = random.Random(self.seed)
        failed_idx: set[int] = {i for i, pid in enumerate(ids) if not pid} if "" in ids else set()
        n_failed = self.lifecycle.count(self.lifecycle.failed, n)
        candidates = [i for i in range(n) if i not in failed_idx] if n_failed or self.lifecycle.lost else []
        if n_failed:
            failed_idx.update(rng.sample(candidates, min(n_failed, len(candidates))))
        lost_idx: set[int] = set()
        n_lost = self.lifecycle.count(self.lifecycle.lost, n)
        if n_lost:
            rest = [i for i in candidates if i not in failed_idx]
            lost_idx = set(rng.sample(rest, min(n_lost, len(rest))))
        self.skipped = not self.file.has_values
        kind: IdKind = "tntId" if self.file.key == "pcId" else "thirdPartyId"
        names = self.file.attributes
        ok = not_found = 0
        self.failed_ids += [ids[i] for i in sorted(failed_idx)]
        self.lost_ids += [ids[i] for i in sorted(lost_idx)]
        if self.skipped:
            ok = n - len(failed_idx)
        else:
            if failed_idx or lost_idx:
                kept = [i for i in range(n) if i not in failed_idx and i not in lost_idx]
                raw, ids = [raw[i] for i in kept], [ids[i] for i in kept]
            ok, not_found = store.apply_rows(kind, names, raw, ids, now_ms, create=self.version == 2)
            ok += len(lost_idx)  # lost silently: reported as successes
        self.counters = {"batchSize": n, "consumedCount": n, "successfulUpdates": ok,
                         "profilesNotFound": not_found, "failedUpdates": len(self.failed_ids)}
        if not self.keep_rows:
            self.file.rows = []  # applied: the profiles hold the data; a large file is not kept twice

    def row_statuses(self, shape: str) -> list[tuple[str, str]]:
        """The v2 per-profile list: ``failed`` rows only (2020), ``all`` rows (2017), or ``none``."""
        if self.version != 2 or shape == "none":
            return []
        if shape == "failed":
            return [(pid, "failed") for pid in self.failed_ids] if self.state == "complete" else []
        if self.state == "incomplete":
            return [(pid, "pending") for pid in self.ids]
        if self.state == "stuck":
            return [(pid, "failed") for pid in self.ids]
        failed = set(self.failed_ids)
        return [(pid, "failed" if pid in failed else "success") for pid in self.ids]

    def rows(self) -> list[dict[str, str]] | None:
        """The rows as ``{key: id, attribute: value}`` dicts (empty cells left out), if still kept."""
        if not self.file.rows and self.size:
            return None
        key = self.file.key or "id"
        return [{key: pid, **attrs} for pid, attrs in self.file.records()]

    def to_dict(self) -> dict[str, Any]:
        """A side-effect-free view for the control API and the plugin."""
        return {
            "batchId": self.batch_id,
            "tenant": self.tenant,
            "version": self.version,
            "status": self.state,
            "lifecycle": self.lifecycle.spec(),
            "forced": self.forced,
            "polls": self.polls,
            "submittedAt": self.submitted_ms,
            "endedAt": self.ended_ms,
            "dueAt": self.due_ms(),
            "key": self.file.key,
            "attributes": list(self.file.attributes),
            "batchSize": self.size if self.state == "incomplete" else self.counters.get("batchSize", 0),
            "counters": dict(self.counters),
            "failedIds": list(self.failed_ids),
            "lostIds": list(self.lost_ids),
            "skipped": self.skipped,
            "detailsDropped": self.details_dropped,
            "statusUrl": self.status_url,
            "violations": [v.to_dict() for v in self.violations],
        }
