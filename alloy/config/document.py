"""The whole document: ``load`` reads ``alloy.toml`` (when given) and the environment, hands each
section to its module, checks what spans sections (``[wildcards]`` and ``default_provider`` name
configured providers, fallbacks name known models), refuses unknown top-level keys, and assembles
the frozen ``Config``.
"""

import os
from dataclasses import dataclass

from alloy.config.cache import CacheSettings, _load_cache
from alloy.config.governance import GovernanceSettings, _load_governance
from alloy.config.log import LogSettings, _load_log
from alloy.config.metrics import MetricsSettings, _load_metrics
from alloy.config.models import ModelSettings, _check_fallbacks, _check_names, _load_model
from alloy.config.passthrough import PassthroughSettings, _load_passthrough
from alloy.config.providers import ProviderSettings, _load_provider, _zero_config_providers
from alloy.config.reading import ConfigError, _Section
from alloy.config.router import RouterSettings, _load_router
from alloy.config.server import ServerSettings, _load_server
from alloy.config.tracing import TracingSettings, _load_tracing


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
    metrics: MetricsSettings = MetricsSettings()
    log: LogSettings = LogSettings()
    governance: GovernanceSettings = GovernanceSettings()
    cache: CacheSettings = CacheSettings()
    tracing: TracingSettings = TracingSettings()
    # Where it was read from (None: the environment alone), so a reload reads the same file.
    path: str | None = None
    # The [server] host and port the file itself names (None: it names none), before the command
    # line's overrides: a reload that changes them must say the address moves only at a restart.
    file_address: tuple = (None, None)


def read_document(path):
    """The TOML document of the file at ``path``; a ``ConfigError`` saying why it cannot be read."""
    import tomllib  # only a configuration file needs it (once, at start and at a reload)

    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text (a TOML file must be)") from None
    except OSError as exc:  # a directory, no permission...
        raise ConfigError(f"{path}: cannot be read: {exc.strerror or exc.__class__.__name__}") from None


def load(path=None, env=None, **server_overrides):
    """Build the ``Config`` from ``path`` (optional; ``ALLOY_CONFIG`` in ``env`` names it when not
    given) and ``env`` (defaults to ``os.environ``).

    ``server_overrides`` (host, port, ...) come from the command line and win over the file.
    """
    env = os.environ if env is None else env
    if path is None and env.get("ALLOY_CONFIG"):
        path = env["ALLOY_CONFIG"]
    source = path or "<environment>"
    document = {} if path is None else read_document(path)
    root = _Section(source, "<top level>", document)
    server_table = root.get("server", dict, {})
    file_address = (server_table.get("host"), server_table.get("port"))
    server = _load_server(source, server_table, env, server_overrides)
    provider_tables = root.get("providers", dict, {})
    providers = [_load_provider(source, name, table, env) for name, table in provider_tables.items()]
    if not providers:
        # Zero-config: the environment alone enables every provider whose key it holds.
        providers = _zero_config_providers(env)
    names = {p.name: p.kind for p in providers}  # in the order given: the first is the default
    router = _load_router(source, root.get("router", dict, {}))
    passthrough = _load_passthrough(source, root.get("passthrough", dict, {}))
    models = [_load_model(source, i, table, names) for i, table in enumerate(root.get("models", list, []))]
    _check_names(source, models)
    _check_fallbacks(source, models)
    wildcard_table = root.get("wildcards", dict, {})
    for pattern, provider in wildcard_table.items():
        if provider not in names:
            raise ConfigError(f"{source}: wildcards.{pattern}: no provider named {provider!r}")
    default = root.get("default_provider", str, next(iter(names), None))
    if default is not None and default not in names:
        raise ConfigError(f"{source}: default_provider: no provider named {default!r}")
    metrics = _load_metrics(source, root.get("metrics", dict, {}))
    log = _load_log(source, root.get("log", dict, {}))
    governance = _load_governance(source, root.get("governance", dict, {}), env)
    cache = _load_cache(source, root.get("cache", dict, {}), env)
    tracing = _load_tracing(source, root.get("tracing", dict, {}), env)
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
        metrics=metrics,
        log=log,
        governance=governance,
        cache=cache,
        tracing=tracing,
        path=path,
        file_address=file_address,
    )
