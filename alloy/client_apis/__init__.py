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
(``OnFirstUse`` below), and this package's own names are imported when first read.
"""

from importlib import import_module

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


class OnFirstUse:
    """Names from modules that are imported the first time one of their names is read.

    ``translation = OnFirstUse(chat_request_from_messages="alloy.client_apis.messages")`` at the top
    of a module costs nothing; ``translation.chat_request_from_messages`` imports that module when
    first read and keeps the name as the object's own attribute, so every later read is an ordinary
    attribute read with no import machinery. An endpoint reads its translation modules through one
    of these: a gateway that is never asked for a translation never holds them (issue 11, idle
    memory), and the first request that needs them pays the import once."""

    def __init__(self, **modules):
        self._modules = modules  # name -> the module that defines it

    def __getattr__(self, name):  # called only while ``name`` is not yet an attribute: once per name
        module = self.__dict__["_modules"].get(name)
        if module is None:
            raise AttributeError(f"{name!r} is not a name this OnFirstUse imports")
        value = getattr(import_module(module), name)
        setattr(self, name, value)
        return value
