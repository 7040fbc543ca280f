"""Azure OpenAI: the OpenAI API under per-deployment URLs, keyed by ``api-key``.

``/v1/chat/completions`` for model ``fast`` routed to deployment ``gpt4o-prod`` becomes
``{base}/openai/deployments/gpt4o-prod/chat/completions?api-version=...``: the upstream model name
of the route is the deployment name, percent-encoded as one path segment (never a dot segment).
The gateway's ``api-version`` is the one sent: a client's own in the query is dropped. The body
passes through unchanged.
"""

from alloy.providers.types import path_segment

DEFAULT_API_VERSION = "2024-10-21"


def auth_lines(api_key):
    return b"api-key: " + api_key.encode() + b"\r\n" if api_key else b""


def _with_version(path, query, api_version):
    kept = [pair for pair in query.split(b"&") if pair and not pair.startswith(b"api-version=")]
    kept.append(b"api-version=" + (api_version or DEFAULT_API_VERSION).encode())
    return path + b"?" + b"&".join(kept)


PLAIN_PATHS = False  # the model names the deployment in the path (target below)


def target(base_path, suffix, upstream_model, api_version):
    path, _, query = suffix.partition(b"?")
    return _with_version(base_path + b"/openai/deployments/" + path_segment(upstream_model) + path, query, api_version)


def passthrough_target(base_path, suffix, api_version):
    """Other endpoints (files, batches...) live under ``/openai`` without a deployment."""
    path, _, query = suffix.partition(b"?")
    return _with_version(base_path + b"/openai" + path, query, api_version)
