"""The OpenAI Responses API (``/v1/responses`` and ``/v1/responses/{id}``): Codex and agents built on
the OpenAI Agents SDK.

Today a Responses request follows the passthrough rules: a ``POST /v1/responses`` naming a model
goes where that model routes (to an OpenAI-compatible provider), anything else to the default
provider, as the allow-list says.
"""

RESPONSES = b"/v1/responses"
RESPONSES_PREFIX = b"/v1/responses/"


class ResponsesEndpoint:
    def __init__(self, pipeline, config, providers):
        self.pipeline = pipeline

    def handle(self, request, path, query, connection, arrived):
        """The stages for a Responses request; returns None (the call answers) or a Prebuilt."""
        pipeline = self.pipeline
        key = pipeline.authenticate(request)
        call = pipeline.route_passthrough(request, path, query, connection)
        return pipeline.proceed(call, key, arrived)
