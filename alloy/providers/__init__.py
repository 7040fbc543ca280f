"""Provider translators: how an OpenAI-shaped request reaches a provider that speaks another API.

The ``openai`` kind (and every OpenAI-compatible preset) is a passthrough handled by the proxy
itself: the body is forwarded byte for byte with the model spliced in by the core scanner. Every
other kind is a module here exposing the same small interface, so adding a provider is adding a
file and a row in ``TRANSLATORS``:

    build_request(body: dict, upstream_model: str, endpoint: str, settings: TranslateSettings)
        -> UpstreamCall
        ``body`` is the decoded OpenAI request (chat completions, or embeddings where the provider
        has them: ``endpoint`` is "chat/completions" or "embeddings"). Raises
        ``alloy.errors.InvalidRequest`` (400) for what the provider cannot express.
    translate_response(status: int, body: bytes, model: str, endpoint: str) -> tuple[int, bytes]
        A complete provider response (success or error) -> (status, OpenAI-shaped JSON bytes).
        Errors map to OpenAI error shapes and statuses.
    StreamTranslator(model: str, include_usage: bool)
        .feed(event: bytes | None, data: bytes) -> list[bytes]
            one provider SSE event (as split by the core ``SSESplitter``) -> zero or more
            complete OpenAI SSE events, each ``b"data: {...}\\n\\n"``
        .finish() -> list[bytes]
            end of the upstream stream -> what is still owed, ending with ``b"data: [DONE]\\n\\n"``
            (or an error event then [DONE] when the provider stream broke off).

``UpstreamCall`` says how to send it: method, path (appended to the provider's base URL, query
included), the extra header lines (credentials in the provider's own scheme), and the body bytes.
"""

import re
from dataclasses import dataclass, field

from alloy.errors import InvalidRequest


@dataclass(frozen=True)
class TranslateSettings:
    api_key: str | None
    api_version: str | None = None  # anthropic-version / Azure api-version
    max_tokens_default: int = 4096  # Anthropic requires max_tokens; used when the client sent none


@dataclass(frozen=True)
class UpstreamCall:
    method: bytes
    path: bytes  # e.g. b"/v1/messages" or b"/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse"
    headers: list = field(default_factory=list)  # [(b"x-api-key", b"..."), ...]
    body: bytes = b""
    stream: bool = False


# Azure deployment names and Gemini model ids are letters, digits, "-", "_", "." (and ":" in some
# Gemini ids); nothing that would need percent-encoding, which a next hop may decode into "/".
_SEGMENT = re.compile(r"[A-Za-z0-9._:~-]+")


def path_segment(model):
    """A model name as one segment of an upstream URL path (Azure deployments, Gemini models).
    Anything but a plain name is refused rather than encoded: "/", "%", "?", spaces or controls
    and the dot segments "." and ".." would let a client pick another path on the upstream."""
    if _SEGMENT.fullmatch(model) is None or model in (".", ".."):
        raise InvalidRequest(
            f"the model name {model!r} cannot name an upstream deployment: use letters, digits, '-', '_', '.' or ':'",
            param="model",
        )
    return model.encode()


# The registry comes after the types above: the translator modules read them from this package.
from alloy.providers import anthropic, azure, gemini, openai  # noqa: E402

# APIs reached by passthrough: the body is forwarded as it is; only path and credentials differ.
PASSTHROUGH = {"openai": openai, "azure": azure}
# APIs reached by translation: modules with build_request / translate_response / StreamTranslator.
TRANSLATORS = {"anthropic": anthropic, "gemini": gemini}
