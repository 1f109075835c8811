"""When an event is tried again: exponential backoff with jitter, and when it is given up on (pure)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    """Delays that double from `first` up to `longest`, each jittered by up to ±50 %, for `max_age` seconds."""

    first: float
    longest: float
    max_age: float

    def delay(self, attempts: int, jitter: float) -> float:
        """The wait after the `attempts`-th failed attempt; `jitter` in [0, 1) (0.5: no jitter)."""
        base = min(self.longest, self.first * float(2 ** min(max(attempts - 1, 0), 62)))
        return base * (0.5 + jitter)

    def next_attempt(self, since: float, now: float, attempts: int, jitter: float) -> float | None:
        """When to try again after a failed attempt at `now`, or None when that would be past the event's max age
        (counted from `since`, its first attempt): it is dead-lettered instead."""
        at = now + self.delay(attempts, jitter)
        return None if at > since + self.max_age else at
