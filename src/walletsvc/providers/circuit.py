"""A small circuit breaker: after repeated provider failures, fail fast for a while instead of making
every caller wait for a timeout."""

from __future__ import annotations

import time
from collections.abc import Callable

from walletsvc.domain.errors import ProviderUnavailable
from walletsvc.request_effects import note_outside_call


class CircuitBreaker:
    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int = 5,
        reset_after: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.failure_threshold = failure_threshold
        self.reset_after = reset_after
        self.clock = clock
        self.failures = 0
        self.opened_at: float | None = None

    @property
    def is_open(self) -> bool:
        return self.opened_at is not None and self.clock() - self.opened_at < self.reset_after

    def before_call(self) -> None:
        """Refuse at once while open; once `reset_after` has passed, let calls try again (half-open:
        one more failure re-opens it)."""
        # Every provider call passes here: a request that reached one is never run again by itself.
        note_outside_call()
        if self.is_open:
            raise ProviderUnavailable(f"{self.name} is failing; calls are paused for a while (circuit open)")

    def record_success(self) -> None:
        self.failures = 0
        self.opened_at = None

    def record_failure(self) -> None:
        half_open = self.opened_at is not None
        self.failures += 1
        if half_open or self.failures >= self.failure_threshold:
            self.opened_at = self.clock()
