"""The master key: when ``ALLOY_MASTER_KEY`` (or ``server.master_key``) is set, every ``/v1/`` request
must carry it, as ``Authorization: Bearer <key>`` (OpenAI's SDKs, Claude Code with
``ANTHROPIC_AUTH_TOKEN``) or as ``x-api-key: <key>`` (the Anthropic convention: Claude Code with
``ANTHROPIC_API_KEY``). A request carrying both passes when either holds the key. Compared in
constant time; the key never appears in an error."""

# The constant-time comparison hmac.compare_digest falls back to, without importing hmac (and with
# it hashlib and OpenSSL's digests: ~0.7 MB of the gateway's resident memory for nothing else).
from _operator import _compare_digest as compare_digest

from alloy.errors import AuthenticationFailed


class MasterKey:
    def __init__(self, key):
        self.expected = key.encode() if key else None

    def check(self, headers):
        if self.expected is None:
            return
        bearer = headers.get(b"authorization")
        api_key = headers.get(b"x-api-key")
        if bearer is None and api_key is None:
            raise AuthenticationFailed("Missing API key: send it as Authorization: Bearer <key> or x-api-key: <key>")
        if bearer is not None:
            scheme, _, token = bearer.partition(b" ")
            # RFC 9110 section 11.1: the auth scheme is case-insensitive.
            if scheme.lower() == b"bearer" and compare_digest(token.strip(), self.expected):
                return
        if api_key is not None and compare_digest(api_key, self.expected):
            return
        raise AuthenticationFailed("Incorrect API key provided")
