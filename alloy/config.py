"""Configuration: ``alloy.toml`` plus the environment, loaded once into frozen dataclasses.

Everything is validated at start-up, so a running gateway never discovers a bad setting on a request.
Unknown keys are refused (a typo must not silently disable a limit), and every message names the
file, the key and what is wrong. Secrets are read from the environment (``"env:NAME"``) and never
appear in an error message or a log line.
"""

import os
import tomllib
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from alloy.headers import HIDDEN_RESPONSE_HEADERS
from alloy.passthrough import DEFAULT_ALLOW, parse_allow_rule
from alloy.providers.presets import PRESETS, ZERO_CONFIG_ORDER


class ConfigError(Exception):
    """A configuration problem, already phrased for the person starting the gateway."""


PROVIDER_KINDS = tuple(PRESETS)
UPSTREAM_CLIENTS = ("core", "httpx")
STRATEGIES = ("weighted", "round-robin", "least-inflight", "latency")


@dataclass(frozen=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 3000
    master_key: str | None = None
    max_header_bytes: int = 65536
    max_body_bytes: int = 32 * 1024 * 1024
    read_timeout: float = 15.0  # a request must arrive whole within this many seconds of its first byte
    keepalive_timeout: float = 75.0  # an idle client connection is closed after this
    shutdown_timeout: float = 30.0  # in-flight requests get this long to finish on SIGTERM
    max_connections: int = 10000  # client connections at once; one more is answered 503 and closed
    write_timeout: float = 60.0  # a client that reads nothing of its answer for this long is dropped
    max_buffered_response_bytes: int = 64 * 1024 * 1024  # a translated answer is read whole: its cap


@dataclass(frozen=True)
class ProviderSettings:
    name: str
    kind: str  # a preset name (alloy/providers/presets.py)
    base_url: str
    api_key: str | None = field(default=None, repr=False)
    api_version: str | None = None  # azure api-version, anthropic-version
    max_tokens_default: int = 4096  # anthropic: max_tokens is required upstream
    headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    client: str = "core"
    connect_timeout: float = 10.0
    first_byte_timeout: float = 600.0  # from the request sent to the response head
    stream_idle_timeout: float = 600.0  # the longest silence between two reads of a response body
    total_timeout: float = 0.0  # the whole request, retries included; 0: no limit
    max_connections: int = 512
    http2: bool = False  # httpx client only
    families: tuple[str, ...] = ()  # model-name patterns routed here by default
    max_queued: int = 1024  # requests waiting for one of the max_connections; one more is refused
    # Provider-scoped client headers (openai-organization, openai-project, anthropic-*, x-goog-*)
    # are dropped unless named here: they choose which account the gateway's key bills.
    forward_client_headers: tuple[str, ...] = ()
    # Upstream answer headers that name the account behind the key: hidden from clients.
    hidden_response_headers: tuple[str, ...] = HIDDEN_RESPONSE_HEADERS

    @property
    def api(self):
        """Which API the provider speaks: "openai", "azure", "anthropic" or "gemini"."""
        return PRESETS[self.kind].kind


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


@dataclass(frozen=True)
class DeploymentSettings:
    provider: str
    model: str  # the name sent upstream
    weight: float = 1.0
    max_inflight: int = 0  # 0: no limit


@dataclass(frozen=True)
class ModelSettings:
    name: str
    deployments: tuple[DeploymentSettings, ...]
    aliases: tuple[str, ...] = ()
    strategy: str | None = None  # None: the router's
    max_retries: int | None = None
    fallbacks: tuple[str, ...] = ()
    context_window_fallbacks: tuple[str, ...] = ()
    content_policy_fallbacks: tuple[str, ...] = ()
    connect_timeout: float | None = None  # None: the provider's
    first_byte_timeout: float | None = None
    stream_idle_timeout: float | None = None
    total_timeout: float | None = None

    @property
    def provider(self):
        """The provider of the first deployment (the owner shown by /v1/models)."""
        return self.deployments[0].provider


@dataclass(frozen=True)
class PassthroughSettings:
    """Which ``/v1/`` paths other than the model endpoints reach the default provider, as
    (method, path pattern) rules; ``*`` in a pattern stands for exactly one path segment."""

    allow: tuple[tuple[str, str], ...] = DEFAULT_ALLOW


@dataclass(frozen=True)
class Config:
    server: ServerSettings
    providers: tuple[ProviderSettings, ...]
    router: RouterSettings = RouterSettings()
    passthrough: PassthroughSettings = PassthroughSettings()
    models: tuple[ModelSettings, ...] = ()
    wildcards: tuple[tuple[str, str], ...] = ()  # (pattern, provider name)
    default_provider: str | None = None
    uses_mock: bool = False  # no provider configured: the built-in mock answers


# --- reading values ------------------------------------------------------------------------------


class _Section:
    """One TOML table being read: hands out typed values and refuses what it did not hand out."""

    def __init__(self, source, where, table):
        if not isinstance(table, dict):
            raise ConfigError(f"{source}: [{where}] must be a table")
        self.source = source
        self.where = where
        self.table = table
        self.read = set()

    def _fail(self, key, problem):
        raise ConfigError(f"{self.source}: {self.where}.{key}: {problem}")

    def get(self, key, kind, default=None):
        self.read.add(key)
        if key not in self.table:
            return default
        value = self.table[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            self._fail(key, f"expected {kind.__name__}, got {type(value).__name__}")
        return value

    def positive(self, key, kind, default):
        value = self.get(key, kind, default)
        if value is not None and value <= 0:
            self._fail(key, "must be greater than zero")
        return value

    def at_least_zero(self, key, kind, default):
        value = self.get(key, kind, default)
        if value is not None and value < 0:
            self._fail(key, "must not be negative")
        return value

    def one_of(self, key, choices, default):
        value = self.get(key, str, default)
        if value is not None and value not in choices:
            self._fail(key, f"expected one of {', '.join(choices)}, got {value!r}")
        return value

    def names(self, key):
        """A list of non-empty strings (aliases, fallbacks)."""
        value = self.get(key, list, [])
        if not all(isinstance(item, str) and item for item in value):
            self._fail(key, "expected a list of names")
        return tuple(value)

    def secret(self, key, env):
        """A secret: ``"env:NAME"`` reads the environment; a literal is accepted but discouraged."""
        value = self.get(key, str)
        if value is None:
            return None
        if value.startswith("env:"):
            name = value[4:]
            if name not in env or not env[name]:
                self._fail(key, f"environment variable {name} is not set")
            return clean_secret(env[name], f"{self.source}: {self.where}.{key} (environment variable {name})")
        return clean_secret(value, f"{self.source}: {self.where}.{key}")

    def header_names(self, key, default=()):
        """A list of header field names (tokens), lower-cased."""
        value = self.get(key, list, list(default))
        if not all(isinstance(item, str) and _is_token(item) for item in value):
            self._fail(key, "expected a list of header names")
        return tuple(item.lower() for item in value)

    def finish(self):
        unknown = sorted(set(self.table) - self.read)
        if unknown:
            self._fail(unknown[0], "unknown key")


_TOKEN_CHARS = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def _is_token(text):
    return bool(text) and all(c in _TOKEN_CHARS for c in text)


def clean_secret(value, where):
    """A key as it goes into a header: surrounding whitespace (a mounted secret's trailing newline)
    stripped; anything else outside visible ASCII refused, naming where it came from, never the
    value."""
    value = value.strip()
    if not value:
        raise ConfigError(f"{where}: the key is empty")
    if not all("!" <= c <= "~" for c in value):
        raise ConfigError(f"{where}: the key holds a space, a control or a non-ASCII character")
    return value


def _check_header_value(value):
    """A configured header value goes into every upstream request as it is: visible characters,
    spaces and tabs only (RFC 9110 section 5.5)."""
    return isinstance(value, str) and all(c == "\t" or " " <= c <= "~" or c > "\x7f" for c in value)


def _check_base_url(source, where, url):
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{source}: {where}.base_url: expected an http(s) URL, got {url!r}")
    try:
        parts.port
    except ValueError:
        raise ConfigError(f"{source}: {where}.base_url: invalid port in {url!r}") from None
    return url.rstrip("/")


# --- the file --------------------------------------------------------------------------------------


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
        max_body_bytes=section.positive("max_body_bytes", int, 32 * 1024 * 1024),
        read_timeout=section.positive("read_timeout", float, 15.0),
        keepalive_timeout=section.positive("keepalive_timeout", float, 75.0),
        shutdown_timeout=section.positive("shutdown_timeout", float, 30.0),
        max_connections=section.positive("max_connections", int, 10000),
        write_timeout=section.positive("write_timeout", float, 60.0),
        max_buffered_response_bytes=section.positive("max_buffered_response_bytes", int, 64 * 1024 * 1024),
    )
    section.finish()
    return _replace(settings, overrides)


def _replace(settings, overrides):
    values = {k: v for k, v in overrides.items() if v is not None}
    if not values:
        return settings
    return ServerSettings(**{**settings.__dict__, **values})


def _load_provider(source, name, table, env):
    where = f"providers.{name}"
    section = _Section(source, where, table)
    kind = section.get("kind", str, name if name in PRESETS else "openai")
    if kind not in PRESETS:
        section._fail("kind", f"unknown provider kind {kind!r} (known: {', '.join(PROVIDER_KINDS)})")
    preset = PRESETS[kind]
    client = section.get("client", str, "core")
    if client not in UPSTREAM_CLIENTS:
        section._fail("client", f"expected one of {', '.join(UPSTREAM_CLIENTS)}, got {client!r}")
    base_url = section.get("base_url", str, preset.base_url)
    if not base_url:
        section._fail("base_url", f"required for kind {kind!r}")
    headers = section.get("headers", dict, {})
    for key, value in headers.items():
        if not _is_token(key) or not _check_header_value(value):
            section._fail("headers", f"invalid header {key!r}")
    # read_timeout is the earlier name of first_byte_timeout (it also bounded stream silences).
    read_timeout = section.positive("read_timeout", float, 600.0)
    first_byte_timeout = section.positive("first_byte_timeout", float, read_timeout)
    api_key = section.secret("api_key", env)
    if api_key is None and preset.key_env and env.get(preset.key_env, "").strip():
        api_key = clean_secret(env[preset.key_env], f"environment variable {preset.key_env}")
    provider = ProviderSettings(
        name=name,
        kind=kind,
        base_url=_check_base_url(source, where, base_url),
        api_key=api_key,
        api_version=section.get("api_version", str),
        max_tokens_default=section.positive("max_tokens_default", int, 4096),
        headers=tuple(headers.items()),
        client=client,
        connect_timeout=section.positive("connect_timeout", float, 10.0),
        first_byte_timeout=first_byte_timeout,
        stream_idle_timeout=section.positive("stream_idle_timeout", float, first_byte_timeout),
        total_timeout=section.at_least_zero("total_timeout", float, 0.0),
        max_connections=section.positive("max_connections", int, 512),
        http2=section.get("http2", bool, False),
        families=preset.families,
        max_queued=section.at_least_zero("max_queued", int, 1024),
        forward_client_headers=section.header_names("forward_client_headers"),
        hidden_response_headers=section.header_names("hidden_response_headers", HIDDEN_RESPONSE_HEADERS),
    )
    section.finish()
    return provider


def _zero_config_providers(env):
    """Each provider whose key is in the environment, at its default (or ``*_BASE_URL``) address."""
    providers = []
    for name in ZERO_CONFIG_ORDER:
        preset = PRESETS[name]
        key = env.get(preset.key_env)
        if not key or not key.strip():
            continue
        key = clean_secret(key, f"environment variable {preset.key_env}")
        url_variable = f"{name.upper()}_BASE_URL"
        base_url = env.get(url_variable) or preset.base_url
        providers.append(
            ProviderSettings(
                name=name,
                kind=name,
                base_url=_check_base_url(url_variable, "env", base_url),
                api_key=key,
                families=preset.families,
            )
        )
    return providers


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


def _load_passthrough(source, table):
    section = _Section(source, "passthrough", table)
    rules = section.get("allow", list, None)
    settings = PassthroughSettings()
    if rules is not None:
        try:
            settings = PassthroughSettings(allow=tuple(parse_allow_rule(rule) for rule in rules))
        except ValueError as problem:
            section._fail("allow", str(problem))
    section.finish()
    return settings


def _load_deployment(source, where, table, name, provider_names):
    section = _Section(source, where, table)
    provider = section.get("provider", str)
    if provider not in provider_names:
        section._fail("provider", f"no provider named {provider!r}")
    deployment = DeploymentSettings(
        provider=provider,
        model=section.get("model", str, name) or name,
        weight=section.positive("weight", float, 1.0),
        max_inflight=section.at_least_zero("max_inflight", int, 0),
    )
    section.finish()
    return deployment


def _load_model(source, index, table, provider_names):
    where = f"models[{index}]"
    section = _Section(source, where, table)
    name = section.get("name", str)
    if not name:
        section._fail("name", "required")
    listed = section.get("deployments", list)
    if listed is not None:
        if "provider" in table or "model" in table:
            section._fail("deployments", "give either provider (and model) or deployments, not both")
        if not listed:
            section._fail("deployments", "must list at least one deployment")
        deployments = tuple(
            _load_deployment(source, f"{where}.deployments[{i}]", item, name, provider_names)
            for i, item in enumerate(listed)
        )
    else:
        # The short form: one deployment, given by provider and model.
        single = {key: table[key] for key in ("provider", "model") if key in table}
        section.read.update(("provider", "model"))
        deployments = (_load_deployment(source, where, single, name, provider_names),)
    model = ModelSettings(
        name=name,
        deployments=deployments,
        aliases=section.names("aliases"),
        strategy=section.one_of("strategy", STRATEGIES, None),
        max_retries=section.at_least_zero("max_retries", int, None),
        fallbacks=section.names("fallbacks"),
        context_window_fallbacks=section.names("context_window_fallbacks"),
        content_policy_fallbacks=section.names("content_policy_fallbacks"),
        connect_timeout=section.positive("connect_timeout", float, None),
        first_byte_timeout=section.positive("first_byte_timeout", float, None),
        stream_idle_timeout=section.positive("stream_idle_timeout", float, None),
        total_timeout=section.at_least_zero("total_timeout", float, None),
    )
    section.finish()
    return model


def _check_fallbacks(source, models):
    known = set()
    for model in models:
        known.update((model.name, *model.aliases))
    for index, model in enumerate(models):
        for key in ("fallbacks", "context_window_fallbacks", "content_policy_fallbacks"):
            for name in getattr(model, key):
                if name not in known:
                    raise ConfigError(f"{source}: models[{index}].{key}: no model named {name!r}")


def load(path=None, env=None, **server_overrides):
    """Build the ``Config`` from ``path`` (optional) and ``env`` (defaults to ``os.environ``).

    ``server_overrides`` (host, port, ...) come from the command line and win over the file.
    """
    env = os.environ if env is None else env
    document = {}
    source = path or "<environment>"
    if path is not None:
        try:
            with open(path, "rb") as handle:
                document = tomllib.load(handle)
        except FileNotFoundError:
            raise ConfigError(f"{path}: no such file") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: {exc}") from None
    root = _Section(source, "<top level>", document)
    server = _load_server(source, root.get("server", dict, {}), env, server_overrides)
    provider_tables = root.get("providers", dict, {})
    providers = [_load_provider(source, name, table, env) for name, table in provider_tables.items()]
    if not providers:
        # Zero-config: the environment alone enables every provider whose key it holds.
        providers = _zero_config_providers(env)
    names = [p.name for p in providers]
    router = _load_router(source, root.get("router", dict, {}))
    passthrough = _load_passthrough(source, root.get("passthrough", dict, {}))
    models = [_load_model(source, i, table, names) for i, table in enumerate(root.get("models", list, []))]
    _check_fallbacks(source, models)
    wildcard_table = root.get("wildcards", dict, {})
    for pattern, provider in wildcard_table.items():
        if provider not in names:
            raise ConfigError(f"{source}: wildcards.{pattern}: no provider named {provider!r}")
    default = root.get("default_provider", str, names[0] if names else None)
    if default is not None and default not in names:
        raise ConfigError(f"{source}: default_provider: no provider named {default!r}")
    root.finish()
    return Config(
        server=server,
        providers=tuple(providers),
        router=router,
        passthrough=passthrough,
        models=tuple(models),
        wildcards=tuple(wildcard_table.items()),
        default_provider=default,
        uses_mock=not providers,
    )
