"""How a batch moves from ``incomplete`` to ``complete`` or ``stuck``: a small spec, read lazily."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

__all__ = ["Lifecycle", "LifecycleError"]

Mode = Literal["immediate", "polls", "seconds", "manual"]
Outcome = Literal["complete", "stuck"]


class LifecycleError(ValueError):
    """A lifecycle spec that cannot be read."""


#: The parts a spec is made of, as an error message lists them.
PARTS = ("immediate", "polls=N", "seconds=T", "manual", "complete", "stuck", "failed=N|P%", "lost=N|P%")


def _amount(text: str, what: str) -> int | float:
    """``3`` rows, or ``10%`` / ``0.1%`` of the rows (returned as a share below 1)."""
    try:
        if text.endswith("%"):
            share = float(text[:-1]) / 100
            if not 0 <= share <= 1:
                raise ValueError
            return share
        n = int(text)
        if n < 0:
            raise ValueError
        return n
    except ValueError:
        raise LifecycleError(f"{what}={text!r}: give a row count (3) or a share (10%)") from None


@dataclass(frozen=True, slots=True)
class Lifecycle:
    """A batch's progression.

    * ``immediate``: ends at the first look;
    * ``polls``: answers ``incomplete`` to the first ``polls`` status polls, ends at the next;
    * ``seconds``: ends ``seconds`` after submission, by the fake's clock;
    * ``manual``: stays ``incomplete`` until forced.

    It ends ``outcome`` (``complete`` or ``stuck``); ``failed`` and ``lost`` are row counts (int) or
    shares (float below 1) of rows that fail, or that are silently not applied.
    """

    mode: Mode = "polls"
    polls: int = 1
    seconds: float = 0.0
    outcome: Outcome = "complete"
    failed: int | float = 0
    lost: int | float = 0

    @classmethod
    def parse(cls, spec: str) -> Lifecycle:
        """Read a spec such as ``immediate``, ``polls=2``, ``seconds=5,stuck``, ``polls=1,failed=10%,lost=2``."""
        lc = cls(mode="immediate")
        parts = [p.strip() for p in spec.split(",") if p.strip()]
        if not parts:
            raise LifecycleError("empty lifecycle spec; try 'immediate', 'polls=1' or 'seconds=5'")
        for part in parts:
            name, _, value = part.partition("=")
            name = name.strip().lower()
            value = value.strip()
            try:
                if name == "immediate" and not value:
                    lc = replace(lc, mode="immediate")
                elif name == "manual" and not value:
                    lc = replace(lc, mode="manual")
                elif name == "polls":
                    lc = replace(lc, mode="polls", polls=int(value or 1))
                elif name == "seconds":
                    lc = replace(lc, mode="seconds", seconds=float(value))
                elif name in ("stuck", "complete") and not value:
                    lc = replace(lc, outcome=name)  # type: ignore[arg-type]
                elif name == "failed":
                    lc = replace(lc, failed=_amount(value, name))
                elif name == "lost":
                    lc = replace(lc, lost=_amount(value, name))
                else:
                    raise LifecycleError(f"unknown lifecycle part {part!r}; the parts are {', '.join(PARTS)}")
            except ValueError as exc:
                if isinstance(exc, LifecycleError):
                    raise
                raise LifecycleError(f"cannot read {part!r} in lifecycle spec {spec!r}") from None
        lc.validate()
        return lc

    def validate(self) -> None:
        if self.mode not in ("immediate", "polls", "seconds", "manual"):
            raise LifecycleError(f"unknown lifecycle mode {self.mode!r}")
        if self.polls < 0 or self.seconds < 0:
            raise LifecycleError("polls and seconds cannot be negative")
        if self.outcome not in ("complete", "stuck"):
            raise LifecycleError(f"a batch ends complete or stuck, not {self.outcome!r}")

    def ends(self, polls_seen: int, elapsed: float) -> bool:
        """Whether a batch has ended after ``polls_seen`` polls (this one included) and ``elapsed`` s."""
        if self.mode == "immediate":
            return True
        if self.mode == "polls":
            return polls_seen > self.polls
        if self.mode == "seconds":
            return elapsed >= self.seconds
        return False

    def count(self, amount: int | float, rows: int) -> int:
        if isinstance(amount, float):
            return min(rows, round(amount * rows))
        return min(rows, amount)

    def spec(self) -> str:
        """The spec string that parses back to this lifecycle."""
        head = {"immediate": "immediate", "manual": "manual", "polls": f"polls={self.polls}",
                "seconds": f"seconds={self.seconds:g}"}[self.mode]
        parts = [head]
        if self.outcome == "stuck":
            parts.append("stuck")
        for name in ("failed", "lost"):
            amount = getattr(self, name)
            if amount:
                parts.append(f"{name}={amount * 100:g}%" if isinstance(amount, float) else f"{name}={amount}")
        return ",".join(parts)
