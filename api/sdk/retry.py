"""Retries of the SDK (tenacity): connection errors, 429 and 503 are tried again with exponential
back-off and jitter, or after the ``Retry-After`` the server sent; every other answer is final.

A POST is retried too: ``submit`` sends an idempotency key (the same on every try), and uploads
are content-addressed (a repeated upload returns the stored one), so a retry never doubles a job
or a file."""

from __future__ import annotations

from dataclasses import dataclass

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from api.sdk.errors import ApiClientError

__all__ = ["RetryPolicy"]

RETRY_STATUSES = frozenset({429, 503})


def _transient(exc: BaseException) -> bool:
    return isinstance(exc, ApiClientError) and (exc.status is None or exc.status in RETRY_STATUSES)


@dataclass(frozen=True)
class RetryPolicy:
    """``attempts`` tries in all (1: no retry); back-off from ``initial`` s doubling up to
    ``max_wait`` s; a ``Retry-After`` is honoured up to ``max_wait``. An answer that asks for
    a longer wait than ``max_wait`` (a project over its quota for minutes or hours) is final:
    the caller sees it at once, with its ``retry_after``."""

    attempts: int = 5
    initial: float = 0.5
    max_wait: float = 30.0

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        if isinstance(exc, ApiClientError) and exc.retry_after is not None:
            return min(exc.retry_after, self.max_wait)
        backoff = wait_exponential_jitter(multiplier=self.initial, max=self.max_wait, jitter=self.initial)
        return float(backoff(state))

    def _retryable(self, exc: BaseException) -> bool:
        if not _transient(exc):
            return False
        after = exc.retry_after if isinstance(exc, ApiClientError) else None
        return after is None or after <= self.max_wait

    def sync(self) -> Retrying:
        return Retrying(
            stop=stop_after_attempt(self.attempts),
            wait=self._wait,
            retry=retry_if_exception(self._retryable),
            reraise=True,
        )

    def asynchronous(self) -> AsyncRetrying:
        return AsyncRetrying(
            stop=stop_after_attempt(self.attempts),
            wait=self._wait,
            retry=retry_if_exception(self._retryable),
            reraise=True,
        )


NO_RETRY = RetryPolicy(attempts=1)
