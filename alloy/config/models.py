"""The ``[[models]]`` array: each model's name, aliases and deployments (the short form, one
provider and model, or a ``deployments`` list), with its own strategy, retries, fallbacks,
timeouts and response-cache settings (``cache``, ``cache_ttl``: see ``alloy.config.cache``); and
the check, once every model is read, that each fallback names a known model or alias.
"""

from dataclasses import dataclass

import orjson

from alloy.config.reading import ConfigError, _check_header_value, _Section
from alloy.config.router import STRATEGIES
from alloy.core import scan_body
from alloy.errors import InvalidRequest
from alloy.providers.types import path_segment

PATH_KINDS = ("azure", "gemini")  # providers whose URL path names the model (a deployment, a model)


def _requestable(section, key, names):
    """``names``, each checked by the rule a request's model meets (the core's scan of a body): a
    name or alias outside it could never be asked for, yet would show in /v1/models and the
    metrics' labels."""
    for name in names:
        try:
            scan_body(orjson.dumps({"model": name}))
        except InvalidRequest as refusal:
            section._fail(key, f"{name!r} is not a name a request can use: {refusal.message}")
    return names


@dataclass(frozen=True)
class DeploymentSettings:
    provider: str
    model: str  # the name sent upstream
    weight: float = 1.0
    max_inflight: int = 0  # 0: no limit
    rpm: int = 0  # the provider's quota for this deployment, requests per minute (0: none)
    tpm: int = 0  # ... and tokens per minute, counted from the answers' usage (0: none)


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
    cache: bool | None = None  # None: [cache] enabled decides
    cache_ttl: float | None = None  # None: [cache] ttl

    @property
    def provider(self):
        """The provider of the first deployment (the owner shown by /v1/models)."""
        return self.deployments[0].provider


def _load_deployment(source, where, table, name, provider_names):
    """``provider_names``: each provider's name and kind."""
    section = _Section(source, where, table)
    provider = section.get("provider", str)
    if provider not in provider_names:
        section._fail("provider", f"no provider named {provider!r}")
    model = section.get("model", str, name) or name
    if not _check_header_value(model):  # it names the upstream model in every answer (x-alloy-model)
        section._fail("model", f"{model!r} cannot hold control characters")
    if provider_names[provider] in PATH_KINDS:  # the model is a segment of every request's path
        try:
            path_segment(model.removeprefix("models/"))
        except InvalidRequest:
            section._fail("model", f"{model!r} cannot name a {provider_names[provider]} deployment: use letters, digits, '-', '_', '.' or ':'")
    deployment = DeploymentSettings(
        provider=provider,
        model=model,
        weight=section.positive("weight", float, 1.0),
        max_inflight=section.at_least_zero("max_inflight", int, 0),
        rpm=section.at_least_zero("rpm", int, 0),
        tpm=section.at_least_zero("tpm", int, 0),
    )
    section.finish()
    return deployment


def _load_model(source, index, table, provider_names):
    where = f"models[{index}]"
    section = _Section(source, where, table)
    name = section.get("name", str)
    if not name:
        section._fail("name", "required")
    _requestable(section, "name", (name,))
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
        seen = {}
        for i, deployment in enumerate(deployments):  # one breaker, one metrics series each
            first = seen.setdefault((deployment.provider, deployment.model), i)
            if first != i:
                section._fail(f"deployments[{i}]", f"the same provider and model as deployments[{first}]")
    else:
        # The short form: one deployment, given by provider and model.
        single = {key: table[key] for key in ("provider", "model") if key in table}
        section.read.update(("provider", "model"))
        deployments = (_load_deployment(source, where, single, name, provider_names),)
    model = ModelSettings(
        name=name,
        deployments=deployments,
        aliases=_requestable(section, "aliases", section.names("aliases")),
        strategy=section.one_of("strategy", STRATEGIES, None),
        max_retries=section.at_least_zero("max_retries", int, None),
        fallbacks=section.names("fallbacks"),
        context_window_fallbacks=section.names("context_window_fallbacks"),
        content_policy_fallbacks=section.names("content_policy_fallbacks"),
        connect_timeout=section.positive("connect_timeout", float, None),
        first_byte_timeout=section.positive("first_byte_timeout", float, None),
        stream_idle_timeout=section.positive("stream_idle_timeout", float, None),
        total_timeout=section.at_least_zero("total_timeout", float, None),
        cache=section.get("cache", bool, None),
        cache_ttl=section.positive("cache_ttl", float, None),
    )
    section.finish()
    return model


def _check_names(source, models):
    """Each name a request may use (a model's, an alias) means one model: a second one would take
    the first one's requests without a word (the last one read won)."""
    owners = {}
    for index, model in enumerate(models):
        for key, names in (("name", (model.name,)), ("aliases", model.aliases)):
            for name in names:
                owner = owners.setdefault(name, index)
                if owner != index:
                    raise ConfigError(f"{source}: models[{index}].{key}: {name!r} already names models[{owner}]")


def _check_fallbacks(source, models):
    known = set()
    for model in models:
        known.update((model.name, *model.aliases))
    for index, model in enumerate(models):
        for key in ("fallbacks", "context_window_fallbacks", "content_policy_fallbacks"):
            for name in getattr(model, key):
                if name not in known:
                    raise ConfigError(f"{source}: models[{index}].{key}: no model named {name!r}")
