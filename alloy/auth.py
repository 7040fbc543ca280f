"""The master key: when ``ALLOY_MASTER_KEY`` (or ``server.master_key``) is set, every ``/v1/`` request
must carry ``Authorization: Bearer <key>``. Compared in constant time; the key never appears in an
error."""

import hmac

from alloy.errors import AuthenticationFailed


class MasterKey:
    def __init__(self, key):
        self.expected = key.encode() if key else None

    def check(self, headers):
        if self.expected is None:
            return
        given = headers.get(b"authorization")
        if given is None:
            raise AuthenticationFailed("Missing bearer authentication in header")
        scheme, _, token = given.partition(b" ")
        # RFC 9110 section 11.1: the auth scheme is case-insensitive.
        if scheme.lower() != b"bearer" or not hmac.compare_digest(token.strip(), self.expected):
            raise AuthenticationFailed("Incorrect API key provided")
