"""Per-host circuit breaker: stop hammering a host that keeps failing.

States per host: **closed** (requests flow; consecutive failures are counted), **open** (after
``failure_threshold`` consecutive failures: requests fail fast with
:class:`~fastreq.exceptions.CircuitOpenError`, or wait, for ``recovery_time`` seconds),
**half-open** (after the recovery time one trial request goes through; success closes the
circuit, failure opens it again for another period).

What counts as a failure is the retry policy's business: a transport error or a 429/5xx.

Example::

    fastreq(urls, circuit_breaker=CircuitBreakerConfig(failure_threshold=5, recovery_time=30))
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from fastreq.exceptions import CircuitOpenError, ConfigurationError

__all__ = ["CircuitBreaker", "CircuitBreakerConfig", "CircuitState"]

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"
CircuitState = str


@dataclass(frozen=True)
class CircuitBreakerConfig:
    """``failure_threshold`` consecutive failures open a host's circuit for ``recovery_time``
    seconds. With ``wait=True`` requests to an open host wait for the trial instead of
    failing fast."""

    failure_threshold: int = 5
    recovery_time: float = 30.0
    wait: bool = False

    def __post_init__(self) -> None:
        if (
            isinstance(self.failure_threshold, bool)
            or not isinstance(self.failure_threshold, int)
            or self.failure_threshold < 1
        ):
            raise ConfigurationError(
                f"failure_threshold must be an int >= 1, got {self.failure_threshold!r}"
            )
        if not isinstance(self.recovery_time, (int, float)) or not self.recovery_time > 0:
            raise ConfigurationError(f"recovery_time must be > 0, got {self.recovery_time!r}")


@dataclass
class _Host:
    state: CircuitState = CLOSED
    failures: int = 0
    opened_at: float = 0.0
    trial_in_flight: bool = False


@dataclass
class CircuitBreaker:
    """The breaker for every host of a client; ``clock`` is injectable for tests."""

    config: CircuitBreakerConfig = field(default_factory=CircuitBreakerConfig)
    clock: Callable[[], float] = time.monotonic
    _hosts: dict[str, _Host] = field(default_factory=dict)

    def state(self, host: str) -> CircuitState:
        entry = self._hosts.get(host)
        if entry is None:
            return CLOSED
        if entry.state == OPEN and self.clock() - entry.opened_at >= self.config.recovery_time:
            return HALF_OPEN
        return entry.state

    def before_request(self, host: str) -> float:
        """``0.0`` if a request to ``host`` may go now; else seconds until it may be tried.

        Raises :class:`CircuitOpenError` when the circuit is open and ``wait`` is off. In the
        half-open state exactly one caller gets the trial; the others are told to wait (or
        fail fast) until its outcome is known.
        """
        entry = self._hosts.get(host)
        if entry is None or entry.state == CLOSED:
            return 0.0
        now = self.clock()
        remaining = entry.opened_at + self.config.recovery_time - now
        if entry.state == OPEN and remaining <= 0:
            entry.state = HALF_OPEN
        if entry.state == HALF_OPEN and not entry.trial_in_flight:
            entry.trial_in_flight = True
            return 0.0
        wait = max(remaining, 0.0) or min(self.config.recovery_time, 1.0)
        if not self.config.wait:
            raise CircuitOpenError(
                f"circuit open for {host}: {entry.failures} consecutive failures; "
                f"next trial in {max(remaining, 0.0):.1f}s",
                host=host,
            )
        return wait

    def holds_trial(self, host: str) -> bool:
        """Whether a half-open trial of ``host`` is out (right after ``before_request``
        returned ``0.0``: whether that caller got the trial)."""
        entry = self._hosts.get(host)
        return entry is not None and entry.trial_in_flight

    def release_trial(self, host: str) -> None:
        """The trial ended without an outcome (cancelled, no proxy free): the next caller
        gets the trial instead of the host staying blocked for good."""
        entry = self._hosts.get(host)
        if entry is not None:
            entry.trial_in_flight = False

    def record_success(self, host: str) -> None:
        entry = self._hosts.get(host)
        if entry is not None:
            entry.state = CLOSED
            entry.failures = 0
            entry.trial_in_flight = False

    def record_failure(self, host: str) -> None:
        entry = self._hosts.setdefault(host, _Host())
        entry.failures += 1
        if entry.state == HALF_OPEN or entry.failures >= self.config.failure_threshold:
            entry.state = OPEN
            entry.opened_at = self.clock()
            entry.trial_in_flight = False

    def reset(self, host: str | None = None) -> None:
        if host is None:
            self._hosts.clear()
        else:
            self._hosts.pop(host, None)


def breaker_from_option(
    option: CircuitBreakerConfig | bool | None, *, clock: Callable[[], float]
) -> CircuitBreaker | None:
    """The client's ``circuit_breaker=`` option: ``True`` (defaults), a config, or off."""
    if option is True:
        option = CircuitBreakerConfig()
    elif option is False:
        option = None
    if option is None:
        return None
    if not isinstance(option, CircuitBreakerConfig):
        raise ConfigurationError(
            "circuit_breaker must be True, False, None or a CircuitBreakerConfig, "
            f"got {option!r}"
        )
    return CircuitBreaker(option, clock=clock)
