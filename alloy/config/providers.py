"""The ``[providers.NAME]`` tables: each provider's kind (a preset), address, key, headers, client
and timeouts; and zero-config, which enables every provider whose key is in the environment when
the file configures none.
"""

import importlib.util
from dataclasses import dataclass, field

from alloy.config.reading import ConfigError, _check_base_url, _check_header_value, _is_token, _Section, clean_secret
from alloy.headers import HIDDEN_RESPONSE_HEADERS
from alloy.providers.presets import PRESETS, ZERO_CONFIG_ORDER

PROVIDER_KINDS = tuple(PRESETS)
UPSTREAM_CLIENTS = ("core", "httpx")


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
    # An idle pooled connection is closed after this (most servers drop theirs after 60-120 s, and
    # a write to a socket the peer already closed costs a retry); the sweep closes it on time.
    pool_idle_timeout: float = 50.0
    # Provider-scoped client headers (openai-organization, openai-project, anthropic-*, x-goog-*)
    # are dropped unless named here: they choose which account the gateway's key bills.
    forward_client_headers: tuple[str, ...] = ()
    # Upstream answer headers that name the account behind the key: hidden from clients.
    hidden_response_headers: tuple[str, ...] = HIDDEN_RESPONSE_HEADERS
    # Does the provider answer the OpenAI Responses API itself? None: only the "openai" kind does
    # (alloy.client_apis.responses_endpoint); false translates /v1/responses onto chat completions.
    responses_api: bool | None = None
    # The CA certificates (PEM) that sign an https provider's certificate: a private CA, or a
    # TLS-inspecting proxy's. None: SSL_CERT_FILE when set, else certifi's store.
    ca_file: str | None = None

    @property
    def api(self):
        """Which API the provider speaks: "openai", "azure", "anthropic" or "gemini"."""
        return PRESETS[self.kind].kind


def _load_provider(source, name, table, env):
    where = f"providers.{name}"
    if not _check_header_value(name):  # it names the provider in every answer (x-alloy-provider)
        raise ConfigError(f"{source}: providers.{name!r}: a provider's name cannot hold control characters")
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
        if key.lower() in NOT_CONFIGURABLE:
            section._fail("headers", f"{key!r} is {NOT_CONFIGURABLE[key.lower()]}")
    # read_timeout is the earlier name of first_byte_timeout (it also bounded stream silences).
    read_timeout = section.positive("read_timeout", float, 600.0)
    first_byte_timeout = section.positive("first_byte_timeout", float, read_timeout)
    api_key = section.secret("api_key", env)
    # The kind's key variable is that provider's key: only a table named after the kind takes it
    # (a local server of kind openai must not be sent OPENAI_API_KEY because the shell holds it).
    if api_key is None and name == kind and preset.key_env and env.get(preset.key_env, "").strip():
        api_key = clean_secret(env[preset.key_env], f"environment variable {preset.key_env}")
    http2 = section.get("http2", bool, False)
    if http2 and client == "httpx" and importlib.util.find_spec("h2") is None:
        section._fail("http2", "needs the h2 package (pip install 'httpx[http2]')")
    api_version = section.get("api_version", str)
    if api_version is not None and not _is_query_value(api_version):
        section._fail("api_version", f"expected letters, digits, '-', '.' and '_' only, got {api_version!r}")
    provider = ProviderSettings(
        name=name,
        kind=kind,
        base_url=_check_base_url(source, where, base_url),
        api_key=api_key,
        api_version=api_version,
        max_tokens_default=section.positive("max_tokens_default", int, 4096),
        headers=tuple(headers.items()),
        client=client,
        connect_timeout=section.positive("connect_timeout", float, 10.0),
        first_byte_timeout=first_byte_timeout,
        stream_idle_timeout=section.positive("stream_idle_timeout", float, first_byte_timeout),
        total_timeout=section.at_least_zero("total_timeout", float, 0.0),
        max_connections=section.positive("max_connections", int, 512),
        http2=http2,
        families=preset.families,
        max_queued=section.at_least_zero("max_queued", int, 1024),
        pool_idle_timeout=section.positive("pool_idle_timeout", float, 50.0),
        forward_client_headers=section.header_names("forward_client_headers"),
        hidden_response_headers=section.header_names("hidden_response_headers", HIDDEN_RESPONSE_HEADERS),
        responses_api=section.get("responses_api", bool, None),
        ca_file=_ca_file(section),
    )
    section.finish()
    return provider


# Header names a provider's ``headers`` may not set: the gateway frames each request itself, and
# the key goes in by api_key (a second Authorization would reach the upstream next to it).
NOT_CONFIGURABLE = {
    **dict.fromkeys(("content-length", "transfer-encoding", "host", "connection", "te", "upgrade", "trailer",
                     "keep-alive", "expect"), "set by the gateway for each request"),
    **dict.fromkeys(("authorization", "x-api-key", "api-key", "x-goog-api-key"), "the provider's key: set it with api_key"),
}  # fmt: skip


def _is_query_value(text):
    """An api_version goes into every request's query (Azure) or a header (Anthropic) as it is."""
    return bool(text) and all(c.isascii() and (c.isalnum() or c in "-._") for c in text)


def _ca_file(section):
    """``ca_file``: a readable file, checked at start (its certificates are loaded by the first
    https connection); a relative path is the working directory's."""
    path = section.get("ca_file", str)
    if path is None:
        return None
    try:
        with open(path, "rb") as pem:
            first = pem.read(1 << 16)
    except OSError as error:
        section._fail("ca_file", f"cannot read {path!r}: {error.strerror or error}")
    if b"-----BEGIN CERTIFICATE-----" not in first:
        section._fail("ca_file", f"{path!r} holds no PEM certificate")
    return path


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
