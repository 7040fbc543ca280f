"""The ``[server]`` section: where the gateway listens, the master key (``master_key`` or the
``ALLOY_MASTER_KEY`` environment variable), and the limits and timeouts of the front door. Values
given on the command line (host, port, ...) win over the file.
"""

from dataclasses import dataclass

from alloy.config.reading import ConfigError, _Section, clean_secret


@dataclass(frozen=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 3000
    master_key: str | None = None
    max_header_bytes: int = 65536
    max_body_bytes: int = 64 * 1024 * 1024  # the openai SDK uploads in 64 MiB parts
    read_timeout: float = 15.0  # a request must arrive whole within this many seconds of its first byte
    keepalive_timeout: float = 75.0  # an idle client connection is closed after this
    shutdown_timeout: float = 30.0  # in-flight requests get this long to finish on SIGTERM
    max_connections: int = 10000  # client connections at once; one more is answered 503 and closed
    write_timeout: float = 60.0  # a client that reads nothing of its answer for this long is dropped
    max_buffered_response_bytes: int = 64 * 1024 * 1024  # a translated answer is read whole: its cap
    overhead_header: bool = True  # x-alloy-overhead-us on every proxied answer
    # Read every stream's usage, also when its client did not ask (alloy.stream_usage); keys,
    # limits and budgets turn it on whatever this says.
    stream_usage: bool = False
    # Web origins whose pages may call the gateway (alloy.cors): "*" or "https://app.example"...
    cors_origins: tuple = ()


def _load_server(source, table, env, overrides):
    section = _Section(source, "server", table)
    master_key = section.secret("master_key", env)
    if master_key is None and env.get("ALLOY_MASTER_KEY"):
        master_key = clean_secret(env["ALLOY_MASTER_KEY"], "environment variable ALLOY_MASTER_KEY")
    settings = ServerSettings(
        host=section.get("host", str, "127.0.0.1"),
        port=section.get("port", int, 3000),
        master_key=master_key,
        max_header_bytes=section.positive("max_header_bytes", int, 65536),
        max_body_bytes=section.positive("max_body_bytes", int, 64 * 1024 * 1024),
        read_timeout=section.positive("read_timeout", float, 15.0),
        keepalive_timeout=section.positive("keepalive_timeout", float, 75.0),
        shutdown_timeout=section.positive("shutdown_timeout", float, 30.0),
        max_connections=section.positive("max_connections", int, 10000),
        write_timeout=section.positive("write_timeout", float, 60.0),
        max_buffered_response_bytes=section.positive("max_buffered_response_bytes", int, 64 * 1024 * 1024),
        overhead_header=section.get("overhead_header", bool, True),
        stream_usage=section.get("stream_usage", bool, False),
        cors_origins=_origins(section),
    )
    section.finish()
    settings = _replace(settings, overrides)
    if not 0 <= settings.port <= 65535:  # from the file or --port: refused here, not by bind() later
        raise ConfigError(f"{source}: server.port: expected a port number between 0 and 65535, got {settings.port}")
    return settings


def _origins(section):
    origins = section.names("cors_origins")
    if not origins:
        return ()
    from alloy.cors import origin_setting

    try:
        return tuple(origin_setting(origin) for origin in origins)
    except ValueError as problem:
        section._fail("cors_origins", str(problem))


def _replace(settings, overrides):
    values = {k: v for k, v in overrides.items() if v is not None}
    if not values:
        return settings
    return ServerSettings(**{**settings.__dict__, **values})
