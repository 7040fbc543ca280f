"""``alloy check``: validate a configuration and say what it routes, without serving anything.

It does what a start does up to the point of listening: the configuration is read and checked
(the same refusals, the same messages, exit status 2), and the gateway's routing is built from it
(providers, model groups, route table, passthrough allow-list), so a configuration that passes here
starts. Then it prints what a reader of the file would want confirmed: each provider (kind, where,
whether it has a key: never the key), each model with its aliases, deployments and fallbacks, the
wildcards and the default provider, and warnings (an open relay, a provider without a key).
"""

import asyncio
from urllib.parse import urlsplit, urlunsplit

from alloy.config import load
from alloy.server import Gateway, is_loopback
from alloy.urls import http_url


def _shown(url):
    """A base URL as printed: user and password (``http://user:pw@host``) replaced by ``***``."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc="***@" + parts.netloc.rpartition("@")[2]))


def report(config):
    """(lines, warnings) describing ``config``; builds the gateway's routing to prove it can."""
    loop = asyncio.new_event_loop()
    try:
        Gateway(config, loop)  # providers, route table, allow-list: what a start would build
    finally:
        loop.close()
    server = config.server
    lines = [f"listen: {http_url(server.host, server.port)}", f"master key: {'set' if server.master_key else 'not set'}"]
    warnings = []
    if server.master_key is None and not is_loopback(server.host):
        warnings.append(f"listening on {server.host} without a master key: anyone who can reach it spends the provider keys")
    if config.uses_mock:
        lines.append("providers: none configured: the built-in mock LLM would answer")
    for provider in config.providers:
        key = "key set" if provider.api_key else "no key"
        lines.append(f"provider {provider.name}: {provider.kind} at {_shown(provider.base_url)} ({key}, client {provider.client})")
        if not provider.api_key and provider.kind not in ("ollama", "vllm", "lmstudio"):
            warnings.append(f"provider {provider.name} has no API key: its upstream will likely refuse every request")
    if config.default_provider:
        lines.append(f"default provider: {config.default_provider}")
    for model in config.models:
        deployments = ", ".join(f"{d.provider}/{d.model}" for d in model.deployments)
        line = f"model {model.name}: {deployments}"
        if model.aliases:
            line += f"; aliases {', '.join(model.aliases)}"
        if model.fallbacks:
            line += f"; fallbacks {', '.join(model.fallbacks)}"
        lines.append(line)
    for pattern, provider in config.wildcards:
        lines.append(f"wildcard {pattern} -> {provider}")
    if not config.models and not config.wildcards and config.default_provider:
        lines.append(f"every other model -> {config.default_provider} (a plain proxy)")
    lines.append(f"passthrough allow-list: {len(config.passthrough.allow)} rules")
    return lines, warnings


def main(path):
    """``alloy check [--config FILE]``: 0 when the configuration would start (warnings or not)."""
    config = load(path)
    lines, warnings = report(config)
    print(f"alloy: configuration OK ({path or 'the environment'})")
    for line in lines:
        print(f"  {line}")
    for warning in warnings:
        print(f"warning: {warning}")
    return 0
