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
"""

from alloy.client_apis.messages import (
    MessagesStreamTranslator,
    anthropic_error_body,
    anthropic_error_type,
    chat_request_from_messages,
    estimate_input_tokens,
    messages_response_from_chat,
)

__all__ = [
    "MessagesStreamTranslator",
    "anthropic_error_body",
    "anthropic_error_type",
    "chat_request_from_messages",
    "estimate_input_tokens",
    "messages_response_from_chat",
]
