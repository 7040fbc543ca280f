"""The ``[router]`` section: how a request survives upstream failures (retries and their deadline
and backoff, the balancing strategy, the circuit breaker). ``STRATEGIES`` is shared with the
per-model ``strategy`` of ``[[models]]``.
"""

from dataclasses import dataclass

from alloy.config.reading import _Section

STRATEGIES = ("weighted", "round-robin", "least-inflight", "latency", "prefix-affinity")


@dataclass(frozen=True)
class RouterSettings:
    """How a request survives upstream failures: retries, balancing and the circuit breaker."""

    max_retries: int = 2  # further attempts after the first, within one model
    retry_deadline: float = 60.0  # no attempt starts this many seconds after the request arrived
    backoff_base: float = 0.25  # retry n waits a random time in [0, min(backoff_max, base * 2**n)]
    backoff_max: float = 8.0
    retry_after_max: float = 30.0  # a longer Retry-After is not waited: try elsewhere or answer
    strategy: str = "weighted"
    failure_threshold: int = 5  # failures within failure_window that take a deployment out
    failure_window: float = 30.0
    cooldown: float = 30.0  # seconds out before a single probe request is let through


def _load_router(source, table):
    section = _Section(source, "router", table)
    default = RouterSettings()
    router = RouterSettings(
        max_retries=section.at_least_zero("max_retries", int, default.max_retries),
        retry_deadline=section.positive("retry_deadline", float, default.retry_deadline),
        backoff_base=section.at_least_zero("backoff_base", float, default.backoff_base),
        backoff_max=section.at_least_zero("backoff_max", float, default.backoff_max),
        retry_after_max=section.at_least_zero("retry_after_max", float, default.retry_after_max),
        strategy=section.one_of("strategy", STRATEGIES, default.strategy),
        failure_threshold=section.positive("failure_threshold", int, default.failure_threshold),
        failure_window=section.positive("failure_window", float, default.failure_window),
        cooldown=section.positive("cooldown", float, default.cooldown),
    )
    section.finish()
    return router
