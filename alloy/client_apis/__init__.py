"""Client APIs: how a client that speaks another provider's API reaches every provider behind Alloy.

``alloy.providers`` translates in one direction: the gateway's lingua franca, OpenAI Chat
Completions, out to a provider that speaks something else. This package is the reverse: a client
that speaks another API (Anthropic Messages: Claude Code, the ``anthropic`` SDK; OpenAI Responses:
Codex, the Agents SDK) is translated *in*
to OpenAI Chat Completions, which then takes the gateway's ordinary path (passthrough or a provider
translator), and the OpenAI answer is translated back to what that client expects.

Each client API is a module of pure functions (no I/O, no gateway state), so the request path can
wire them in front of the proxy without the two knowing about each other:

    messages            Anthropic Messages API (``POST /v1/messages``, ``/v1/messages/count_tokens``)
    responses_request   OpenAI Responses API (``POST /v1/responses``) in; ``responses_response`` and
                        ``responses_stream`` the Response and its events out

and the modules that wire them into the request path (``alloy.pipeline`` hands the paths over):

    messages_endpoint   the stages for a Messages request: authenticate, route, translate, a Call
    messages_wire       the call's connection and transport: the relay's answer in Anthropic's shape
    messages_native     Anthropic providers answering Messages natively (passthrough)
    responses_endpoint  the stages for a Responses request: passthrough by model, or translated
    responses_wire      the translated call's transport (the Messages one, in the Responses shapes)

Nothing here is imported with the package: the endpoints load the translation modules on first use
(``on_first_use`` below), and this package's own names are imported when first read.
"""

from importlib import import_module
from types import ModuleType

# The package's own names, each from the module that defines it (imported when first read).
_EXPORTED = {
    "MessagesStreamTranslator": "alloy.client_apis.messages",
    "anthropic_error_body": "alloy.client_apis.messages",
    "anthropic_error_type": "alloy.client_apis.messages",
    "chat_request_from_messages": "alloy.client_apis.messages",
    "estimate_input_tokens": "alloy.client_apis.messages",
    "messages_response_from_chat": "alloy.client_apis.messages",
}
__all__ = sorted(_EXPORTED)


def __getattr__(name):  # a name of __all__ not read yet (PEP 562); submodules are found as usual
    module = _EXPORTED.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(module), name)


def on_first_use(name, **names):
    """A namespace of ``names`` (name -> the module that defines it), imported when first read.

    ``request = on_first_use("messages request", chat_request_from_messages="alloy.client_apis.messages")``
    at the top of a module costs nothing. The first read of any of its names imports all of their
    modules (names used together go in one namespace) and keeps them as its attributes; the
    namespace then drops its ``__getattr__``, so every later read is an ordinary module attribute
    read (as cheap as ``module.name`` after ``import module``), with no import machinery in the way.
    An endpoint reads its translation modules through one of these: a gateway never asked for a
    translation never holds them (issue 11, idle memory), and the first request that needs them
    pays the import once (a few milliseconds)."""
    namespace = ModuleType(name)  # a module object: Python's attribute reads of modules are cached

    def __getattr__(attribute):  # the first read: import every name, then be an ordinary module
        if attribute not in names:
            raise AttributeError(f"{name} has no attribute {attribute!r}")
        for each, module in names.items():
            setattr(namespace, each, getattr(import_module(module), each))
        del namespace.__getattr__
        return getattr(namespace, attribute)

    namespace.__getattr__ = __getattr__
    return namespace
