"""The ``[tracing]`` section: W3C trace context and span export (``alloy.observability.tracing``).

    [tracing]
    enabled = false         # true: continue the client's traceparent (or start a trace) and send
                            # the upstream a traceparent naming Alloy's attempt as the parent
    start = true            # with enabled: start a trace for a request that carries none
    otlp_endpoint = "http://127.0.0.1:4318/v1/traces"   # export spans over OTLP/HTTP (JSON); none: no export
    service_name = "alloy"  # the resource's service.name
    headers = { authorization = "env:OTLP_TOKEN" }     # extra headers for the collector

With tracing off (the default) a client's ``traceparent`` travels upstream untouched, like any
other header.
"""

from dataclasses import dataclass

from alloy.config.reading import _check_base_url, _check_header_value, _Section


@dataclass(frozen=True)
class TracingSettings:
    enabled: bool = False
    start: bool = True
    otlp_endpoint: str | None = None
    service_name: str = "alloy"
    headers: tuple[tuple[str, str], ...] = ()


def _load_tracing(source, table, env):
    section = _Section(source, "tracing", table)
    enabled = section.get("enabled", bool, False)
    endpoint = section.get("otlp_endpoint", str, None)
    if endpoint is not None:
        endpoint = _check_base_url(source, "tracing", endpoint, key="otlp_endpoint")
        if not endpoint.endswith("/v1/traces"):
            endpoint += "/v1/traces"  # the collector's base URL given: OTLP/HTTP's traces path
    headers = []
    for name, value in section.get("headers", dict, {}).items():
        if isinstance(value, str) and value.startswith("env:"):
            value = env.get(value[4:])
            if value is None:
                section._fail("headers", f"{name}: the environment variable is not set")
        if not _check_header_value(value) or not name or not all("!" <= c <= "~" and c != ":" for c in name):
            section._fail("headers", f"{name}: not a valid header")
        headers.append((name, value))
    settings = TracingSettings(
        enabled=enabled,
        start=section.get("start", bool, True),
        otlp_endpoint=endpoint,
        service_name=section.get("service_name", str, "alloy") or "alloy",
        headers=tuple(headers),
    )
    section.finish()
    return settings
