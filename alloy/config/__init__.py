"""Configuration: ``alloy.toml`` plus the environment, loaded once into frozen dataclasses.

Everything is validated at start-up, so a running gateway never discovers a bad setting on a request.
Unknown keys are refused (a typo must not silently disable a limit), and every message names the
file, the key and what is wrong. Secrets are read from the environment (``"env:NAME"``) and never
appear in an error message or a log line. The package holds one module per section (``server``,
``providers``, ``router``, ``models``, ``passthrough``, ``metrics``, ``log``, ``tracing``,
``governance``, ``cache``), the reading machinery
they share (``reading``) and the document that assembles them (``document``); the public API is
re-exported here, so ``from alloy.config import load, ConfigError, Config`` and every settings class
works.
"""

from alloy.config.cache import CacheSettings
from alloy.config.document import Config, load
from alloy.config.governance import GovernanceSettings
from alloy.config.log import LOG_FORMATS, LogSettings
from alloy.config.metrics import MetricsSettings
from alloy.config.models import DeploymentSettings, ModelSettings
from alloy.config.passthrough import PassthroughSettings
from alloy.config.providers import PROVIDER_KINDS, UPSTREAM_CLIENTS, ProviderSettings
from alloy.config.reading import ConfigError, clean_secret
from alloy.config.router import STRATEGIES, RouterSettings
from alloy.config.server import ServerSettings
from alloy.config.tracing import TracingSettings

__all__ = [
    "LOG_FORMATS",
    "PROVIDER_KINDS",
    "STRATEGIES",
    "UPSTREAM_CLIENTS",
    "CacheSettings",
    "Config",
    "ConfigError",
    "DeploymentSettings",
    "GovernanceSettings",
    "LogSettings",
    "MetricsSettings",
    "ModelSettings",
    "PassthroughSettings",
    "ProviderSettings",
    "RouterSettings",
    "ServerSettings",
    "TracingSettings",
    "clean_secret",
    "load",
]
