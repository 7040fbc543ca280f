"""Which ``/v1/`` requests other than the model endpoints reach the default provider.

Passthrough forwards a request with the provider's key, so it follows an allow-list of OpenAI's
paths and methods rather than forwarding whatever a client names: a path outside it is answered
404 (405 with ``Allow`` when only the method is wrong) and never leaves the gateway. Rules are
``"METHOD /v1/path"`` strings in ``[passthrough] allow``; ``*`` stands for exactly one path segment
(an id). HEAD is allowed wherever GET is. Paths are matched after ``clean_path`` normalized them.
"""

# OpenAI's endpoints that take a provider key and need nothing from the gateway but the key:
# models, moderations, images, audio, files and uploads, batches, and stored Responses.
DEFAULT_ALLOW = tuple(
    (method, path)
    for method, path in (
        ("GET", "/v1/models"),
        ("GET", "/v1/models/*"),
        ("POST", "/v1/moderations"),
        ("POST", "/v1/images/generations"),
        ("POST", "/v1/images/edits"),
        ("POST", "/v1/images/variations"),
        ("POST", "/v1/audio/speech"),
        ("POST", "/v1/audio/transcriptions"),
        ("POST", "/v1/audio/translations"),
        ("GET", "/v1/files"),
        ("POST", "/v1/files"),
        ("GET", "/v1/files/*"),
        ("DELETE", "/v1/files/*"),
        ("GET", "/v1/files/*/content"),
        ("POST", "/v1/uploads"),
        ("POST", "/v1/uploads/*/parts"),
        ("POST", "/v1/uploads/*/complete"),
        ("POST", "/v1/uploads/*/cancel"),
        ("GET", "/v1/batches"),
        ("POST", "/v1/batches"),
        ("GET", "/v1/batches/*"),
        ("POST", "/v1/batches/*/cancel"),
        ("POST", "/v1/responses"),
        ("GET", "/v1/responses/*"),
        ("DELETE", "/v1/responses/*"),
        ("POST", "/v1/responses/*/cancel"),
        ("POST", "/v1/responses/input_tokens"),
        ("POST", "/v1/responses/compact"),
        ("GET", "/v1/responses/*/input_items"),
    )
)

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def parse_allow_rule(rule):
    """``"GET /v1/files/*"`` -> ("GET", "/v1/files/*"); ValueError saying what is wrong."""
    if not isinstance(rule, str):
        raise ValueError(f"expected strings such as 'GET /v1/files/*', got {rule!r}")
    method, _, path = rule.strip().partition(" ")
    path = path.strip()
    if method not in METHODS:
        raise ValueError(f"{rule!r}: the method must be one of {', '.join(METHODS)}")
    segments = path.split("/")
    if not path.startswith("/v1/") or "" in segments[1:] or "." in segments or ".." in segments:
        raise ValueError(f"{rule!r}: the path must start with /v1/ and have no empty or dot segments")
    if not all(segment == "*" or "*" not in segment for segment in segments):
        raise ValueError(f"{rule!r}: '*' must stand alone for a whole segment")
    return method, path


class AllowList:
    """The rules, indexed by segment count; a lookup walks the few rules of that length."""

    def __init__(self, rules):
        self.by_length = {}
        for method, path in rules:
            pattern = tuple(None if segment == "*" else segment.encode() for segment in path.split("/")[1:])
            methods = {method.encode()} | ({b"HEAD"} if method == "GET" else set())
            self.by_length.setdefault(len(pattern), []).append((pattern, methods, path))

    def _matching(self, path):
        """The (pattern, methods, rule path) of each rule ``path`` (bytes) matches."""
        segments = path.split(b"/")[1:]
        for rule in self.by_length.get(len(segments), ()):
            if all(want is None or want == got for want, got in zip(rule[0], segments)):
                yield rule

    def methods_for(self, path):
        """The methods allowed on ``path`` (bytes, normalized): an empty set when none is."""
        allowed = set()
        for _, methods, _ in self._matching(path):
            allowed |= methods
        return allowed

    def rule_for(self, path):
        """The path of the first rule ``path`` matches (``"/v1/files/*"``), or None."""
        for _, _, rule in self._matching(path):
            return rule
        return None
