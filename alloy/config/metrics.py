"""The ``[metrics]`` section: ``GET /metrics`` in the Prometheus text format (``alloy.observability``).

    [metrics]
    enabled = true          # false: no /metrics, no metrics listener
    public = false          # true: /metrics needs no key even when a master key is set
    port = 9464             # serve /metrics on its own listener (host below) instead of the main port
    host = "127.0.0.1"      # where that listener binds (loopback unless you say otherwise)
    models = ["gpt-4o"]     # model names kept as labels besides the [[models]] names and aliases;
                            # any other name a client asks for is counted as model="other"
"""

from dataclasses import dataclass, field

from alloy.config.reading import _Section


@dataclass(frozen=True)
class MetricsSettings:
    enabled: bool = True
    public: bool = False
    port: int | None = None  # None: /metrics on the gateway's own port
    host: str = "127.0.0.1"
    models: tuple[str, ...] = ()
    # Not a configuration key: with --workers N the supervisor sets the directory where each worker
    # leaves a snapshot of its counters, so any worker answers /metrics for the whole server. Not
    # compared either: a reloaded file (which never names it) is the same [metrics] section.
    workers_dir: str | None = field(default=None, repr=False, compare=False)


def _load_metrics(source, table):
    section = _Section(source, "metrics", table)
    port = section.get("port", int, None)
    if port is not None and not 0 <= port <= 65535:
        section._fail("port", "expected a port number between 0 and 65535")
    settings = MetricsSettings(
        enabled=section.get("enabled", bool, True),
        public=section.get("public", bool, False),
        port=port,
        host=section.get("host", str, "127.0.0.1") or "127.0.0.1",
        models=section.names("models"),
    )
    section.finish()
    return settings
