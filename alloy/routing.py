"""The route stage's table: every name a client may ask for, and the model group it reaches.

Built once at start from the configuration: each configured ``[[models]]`` entry is a model group
of its deployments (with circuit breakers), reached by its name and aliases; each provider is a
group of one deployment (no breaker: there is nowhere else to send its requests, so cooling it
would only turn the provider's own answers into 503s, and an SDK honouring their Retry-After into
a client waiting out the cooldown; a configured model of one deployment and no fallbacks is left
without one for the same reason), reached by ``provider/model``, by the
``[wildcards]`` and model families that name it, and, for the default provider of a plain proxy,
by every name. The core ``RouteTable`` does the lookup.
"""

import orjson

from alloy.balancer import Deployment, ModelGroup
from alloy.core import RouteTable, scan_body
from alloy.errors import ModelNotFound
from alloy.headers import JSON_HEADER
from alloy.prebuilt import Prebuilt
from alloy.upstream import Timeouts


def _timeouts(provider, model=None):
    """A deployment's timeouts: the model's overrides, else its provider's."""

    def pick(key):
        value = getattr(model, key) if model is not None else None
        return getattr(provider, key) if value is None else value

    return Timeouts(
        pick("connect_timeout"), pick("first_byte_timeout"), pick("stream_idle_timeout"), pick("total_timeout")
    )


class Routes:
    def __init__(self, config, providers):
        """``providers``: the send-stage object of each provider, by name (``alloy.sending``)."""
        settings = {p.name: p for p in config.providers}
        router = config.router

        def provider_group(name):
            deployment = Deployment(providers[name], None, 1.0, 0, _timeouts(settings[name]), None)
            return ModelGroup(name, [deployment], router.strategy, router.max_retries)

        provider_groups = {name: provider_group(name) for name in providers}
        self.default = providers.get(config.default_provider)
        self.default_group = provider_groups.get(config.default_provider)
        self.table = RouteTable()
        self.listed = []  # (name, owner) of each configured model and alias, for /v1/models
        self.configured = []  # the configured model groups, for /health/ready
        self.aliases = {}  # alias -> the name of the configured model it stands for
        groups = {}  # configured models by name and alias, for fallbacks
        for model in config.models:
            deployments = []
            for d in model.deployments:
                deployment = Deployment(
                    providers[d.provider], d.model, d.weight, d.max_inflight,
                    _timeouts(settings[d.provider], model), router,
                )  # fmt: skip
                deployment.rpm, deployment.tpm = d.rpm, d.tpm  # the provider's quota for it
                deployments.append(deployment)
            max_retries = router.max_retries if model.max_retries is None else model.max_retries
            group = ModelGroup(model.name, deployments, model.strategy or router.strategy, max_retries)
            self.configured.append(group)
            for name in (model.name, *model.aliases):
                self.table.add_exact(name, group)
                groups[name] = group
                self.listed.append((name, model.provider))
            for alias in model.aliases:
                self.aliases[alias] = model.name  # a key allowed the model may use its aliases
        for model, group in zip(config.models, self.configured):
            group.fallbacks = tuple(groups[name] for name in model.fallbacks)
            group.context_window_fallbacks = tuple(groups[name] for name in model.context_window_fallbacks)
            group.content_policy_fallbacks = tuple(groups[name] for name in model.content_policy_fallbacks)
            if len(group.deployments) == 1 and not group.fallbacks:
                group.deployments[0].breaker = None  # nowhere else to send it: never cooled (see above)
        for name, group in provider_groups.items():
            self.table.add_prefix(name, group)
        for pattern, provider in config.wildcards:
            self.table.add_wildcard(pattern, provider_groups[provider])
        configured = {pattern for pattern, _ in config.wildcards}
        for provider in config.providers:
            # Model families a provider serves (claude-* for anthropic...), unless configured.
            for pattern in provider.families:
                if pattern not in configured:
                    self.table.add_wildcard(pattern, provider_groups[provider.name])
        if not config.models and not config.wildcards and self.default_group is not None:
            # A plain proxy: every model goes to the default provider under its own name.
            self.table.add_wildcard("*", self.default_group)
        catalogue = catalogue_names(config)
        # A deployment with a tokens-per-minute quota counts every answer's usage, streams included.
        self.counts_tokens = any(d.tpm for group in self.configured for d in group.deployments)
        # /v1/models/{id} answers every name a chat request could use (a provider/model prefix, a
        # wildcard): an application that checks a model with models.retrieve() before using it.
        self.listing = ModelListing(catalogue if catalogue else self.listed, self.table, self.aliases)

    def for_model(self, scan):
        """(model group, resolved name) for the model ``scan`` names; 404 when nothing routes it."""
        found = self.table.lookup(scan.model)
        if found is None:
            raise ModelNotFound(
                f"The model '{scan.model}' does not exist or is not routed by this gateway", model=scan.model, param="model"
            )
        return found

    def readiness(self):
        """``/health/ready``: each configured model's deployments and their state; unavailable when
        some model has no healthy deployment left."""
        models = {group.name: group.report() for group in self.configured}
        ready = all(report["healthy"] for report in models.values())
        return ready, {"status": "ready" if ready else "unavailable", "models": models}


# Zero-config ``/v1/models``: the models each preset's provider is known to serve (a static list, not
# fetched: it may lag the provider's own; any other name the provider knows still routes). Listed for
# a provider configured under its preset's own name (``openai``, ``anthropic``...); others have none.
CATALOGUE = {
    "openai": (
        "gpt-5", "gpt-5-mini", "gpt-5-nano", "gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano", "gpt-4o",
        "gpt-4o-mini", "o3", "o4-mini", "text-embedding-3-small", "text-embedding-3-large",
    ),
    "anthropic": (
        "claude-opus-4-5", "claude-sonnet-4-5", "claude-haiku-4-5", "claude-opus-4-1", "claude-opus-4-0",
        "claude-sonnet-4-0", "claude-3-7-sonnet-latest", "claude-3-5-haiku-latest",
    ),
    "gemini": ("gemini-3-pro-preview", "gemini-2.5-pro", "gemini-2.5-flash", "gemini-2.5-flash-lite", "gemini-2.0-flash"),
    "mistral": ("mistral-large-latest", "mistral-medium-latest", "mistral-small-latest", "codestral-latest"),
    "deepseek": ("deepseek-chat", "deepseek-reasoner"),
    "groq": ("llama-3.3-70b-versatile", "llama-3.1-8b-instant", "openai/gpt-oss-120b", "openai/gpt-oss-20b"),
}  # fmt: skip


def catalogue_names(config):
    """(name, provider) for ``/v1/models`` without configured models, or () when the default
    provider's own listing says it all (a single OpenAI-compatible provider: passed through).

    Every provider whose catalogue is known is listed: the default provider's models under their
    own names (the plain proxy routes every name there), the others as ``provider/model``, the
    names by which the route table reaches them."""
    if config.models or (len(config.providers) == 1 and config.providers[0].api in ("openai", "azure")):
        return ()
    names = []
    for provider in config.providers:
        models = CATALOGUE.get(provider.name) if provider.kind == provider.name else None
        bare = provider.name == config.default_provider and not config.wildcards
        for model in models or ():
            names.append((model if bare else f"{provider.name}/{model}", provider.name))
    return names


# Passthrough endpoints whose JSON body names a model: routed by it (to a passthrough provider)
# rather than always to the default provider.
MODEL_BEARING = frozenset((b"/v1/images/generations", b"/v1/moderations", b"/v1/audio/speech", b"/v1/responses"))


# Passthrough endpoints whose multipart form names a model (RFC 7578: a part named "model").
MODEL_IN_FORM = frozenset((b"/v1/audio/transcriptions", b"/v1/audio/translations", b"/v1/images/edits", b"/v1/images/variations"))
# Endpoints whose models Alloy cannot see: a batch names them in the lines of a stored file.
MODELS_UNSEEN = frozenset((b"/v1/batches",))


def json_model_scan(request, json_only=False):
    """The core's scan of a JSON body that names a model; None for another body or no model (such
    a request is routed by its path instead). ``json_only``: the endpoint takes nothing but JSON
    (images/generations, moderations, audio/speech, responses), so its body is read whatever its
    Content-Type says: a client must not route around the model's checks, a key's model list or
    its cost by spelling the type otherwise (a body that is not JSON is a 400 there)."""
    if not json_only:
        content_type = request.headers.get(b"content-type", b"")
        if not content_type[:16].lower() == b"application/json":  # media types ignore case
            return None
    if not request.body_buffer:
        return None
    scan = scan_body(request.body_buffer)
    return scan if scan.model is not None else None


class ModelListing:
    """``GET /v1/models`` and ``/v1/models/{id}``, built once: the configured models and aliases;
    without any, the providers' catalogues (``catalogue_names``) when more than one provider (or a
    translated one) is enabled. Either way ``/v1/models/{id}`` also answers any other name the
    route table reaches (``provider/model``, a wildcard). Otherwise there is no listing: the
    request passes through to the default provider."""

    def __init__(self, listed, table=None, aliases=None):
        """``listed``: (name, owner) pairs; ``table``: the route table when they are a catalogue;
        ``aliases``: alias -> model name (a key limited to models sees what it may use)."""
        self.entries = [entry(name, owner) for name, owner in listed]
        self.table = table
        self.aliases = aliases or {}
        self.models = {e["id"]: Prebuilt(200, orjson.dumps(e), JSON_HEADER) for e in self.entries}
        self.everything = Prebuilt(200, orjson.dumps({"object": "list", "data": self.entries})) if self.entries else None
        self.for_keys = {}  # (key id, its rules) -> its listing, built at its first ask

    def answer(self, method, path, key=None):
        """The prebuilt answer for ``path``, or None when the listing does not answer it. ``key``:
        a virtual key limited to models sees those only (another model's id is a 404 to it). HEAD
        is answered as GET is, its head alone: passed through, it would ask the provider with the
        gateway's key about models the listing keeps from the client."""
        if self.everything is None or (method != b"GET" and method != b"HEAD"):
            return None
        found = self._answer(path, key)
        return found if found is None or method == b"GET" else found.head_only()

    def _answer(self, path, key):
        limited = key is not None and key.rules
        if path == b"/v1/models":
            return self.everything if not limited else self._listing_for(key)
        if not path.startswith(b"/v1/models/"):
            return None
        name = path[len(b"/v1/models/") :].replace(b"%2F", b"/").decode("utf-8", "replace")  # see endpoints.normalized
        if limited and not key.may_use(name, self.aliases.get(name)):
            raise ModelNotFound(f"The model '{name}' does not exist", model=name, param="model")
        answer = self.models.get(name)
        if answer is not None:
            return answer
        found = self.table.lookup(name) if self.table is not None else None
        if found is None:
            raise ModelNotFound(f"The model '{name}' does not exist", model=name, param="model")
        return Prebuilt(200, orjson.dumps(entry(name, found[0].name)), JSON_HEADER)

    def _listing_for(self, key):
        cached = self.for_keys.get((key.id, key.rules))
        if cached is None:
            if len(self.for_keys) >= 1024:  # keys come and go: bounded
                self.for_keys.clear()
            allowed = [e for e in self.entries if key.may_use(e["id"], self.aliases.get(e["id"]))]
            cached = self.for_keys[(key.id, key.rules)] = Prebuilt(200, orjson.dumps({"object": "list", "data": allowed}))
        return cached


def entry(name, owner):
    return {"id": name, "object": "model", "created": 0, "owned_by": owner}
