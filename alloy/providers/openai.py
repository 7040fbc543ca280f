"""OpenAI and every OpenAI-compatible API: a passthrough. The body goes upstream byte for byte
(the core scanner splices the model name in place); only the path prefix and the key change."""


def auth_lines(api_key):
    return b"authorization: Bearer " + api_key.encode() + b"\r\n" if api_key else b""


def target(base_path, suffix, upstream_model, api_version):
    """``suffix`` is the client's path after ``/v1`` (query included)."""
    return base_path + suffix


def passthrough_target(base_path, suffix, api_version):
    return base_path + suffix
