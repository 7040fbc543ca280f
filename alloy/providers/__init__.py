"""Provider translators: how an OpenAI-shaped request reaches a provider that speaks another API.

The ``openai`` kind (and every OpenAI-compatible preset) is a passthrough handled by the proxy
itself: the body is forwarded byte for byte with the model spliced in by the core scanner. Every
other kind is a module here exposing the same small interface, so adding a provider is adding a
file and a row in ``TRANSLATORS`` (its module's name: a translator is imported when the first
provider of its kind is configured, so a gateway in front of OpenAI alone never loads one; issue 11,
idle memory):

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
        .final_usage() -> dict | None
            the stream's usage in OpenAI's shape once it ended, whether or not the client asked
            to receive it (the call's account reads it).
        .complete() -> bool
            the answer is whole already (its end event came): an upstream failing after that (a
            length it did not fill, a stall before its last chunk) ends the stream as finished.

``UpstreamCall`` says how to send it: method, path (appended to the provider's base URL, query
included), the extra header lines (credentials in the provider's own scheme), and the body bytes.
"""

from importlib import import_module

from alloy.providers import azure, openai
from alloy.providers.types import TranslateSettings, UpstreamCall, path_segment

# APIs reached by passthrough: the body is forwarded as it is; only path and credentials differ.
PASSTHROUGH = {"openai": openai, "azure": azure}
# APIs reached by translation: the modules with build_request / translate_response / StreamTranslator,
# by name: once imported, a translator (and what it imports) stays for the life of the process.
TRANSLATORS = {"anthropic": "alloy.providers.anthropic", "gemini": "alloy.providers.gemini"}


def translator_for(api):
    """The translator module of ``api`` (imported now when it is the first provider of its kind),
    or None for an API reached by passthrough. Called once per provider, at start or at a reload."""
    module = TRANSLATORS.get(api)
    return None if module is None else import_module(module)


__all__ = ["PASSTHROUGH", "TRANSLATORS", "TranslateSettings", "UpstreamCall", "path_segment", "translator_for"]
