"""OpenAI and every OpenAI-compatible API: a passthrough. The body goes upstream byte for byte
(the core scanner splices the model name in place); only the path prefix and the key change."""


# The upstream path is the base path and the client's own path, whatever the model: the provider
# stage builds it itself (PassthroughProvider.send), without a call into this module.
PLAIN_PATHS = True


def auth_lines(api_key):
    return b"authorization: Bearer " + api_key.encode() + b"\r\n" if api_key else b""

