"""The shared reading machinery of the configuration: ``ConfigError``, the ``_Section`` reader that
hands out typed values from one TOML table and refuses keys it did not hand out, secrets read from
the environment and cleaned for use in a header (never shown in a message), and the checks on
header names and values and on base URLs that every section relies on.
"""

from alloy.urls import split_url


# No setting is meaningful beyond this (a timeout of 31 years, a price of a billion dollars); past it
# the timers and thread waits the values reach overflow. inf and nan fail the same comparison.
MAX_NUMBER = 1e9


class ConfigError(Exception):
    """A configuration problem, already phrased for the person starting the gateway."""


class _Section:
    """One TOML table being read: hands out typed values and refuses what it did not hand out."""

    def __init__(self, source, where, table):
        if not isinstance(table, dict):
            raise ConfigError(f"{source}: [{where}] must be a table")
        self.source = source
        self.where = where
        self.table = table
        self.read = set()

    def _fail(self, key, problem):
        raise ConfigError(f"{self.source}: {self.where}.{key}: {problem}")

    def get(self, key, kind, default=None):
        self.read.add(key)
        if key not in self.table:
            return default
        value = self.table[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            self._fail(key, f"expected {kind.__name__}, got {type(value).__name__}")
        if kind is float and not -MAX_NUMBER <= value <= MAX_NUMBER:  # TOML has inf and nan
            self._fail(key, f"expected a finite number of at most {MAX_NUMBER:g} (got {value!r})")
        if kind is int and not -MAX_NUMBER <= value <= MAX_NUMBER:  # past a C long: every accept failed
            self._fail(key, f"expected a number of at most {MAX_NUMBER:g} (got {value})")
        return value

    def positive(self, key, kind, default):
        value = self.get(key, kind, default)
        if value is not None and value <= 0:
            self._fail(key, "must be greater than zero")
        return value

    def at_least_zero(self, key, kind, default):
        value = self.get(key, kind, default)
        if value is not None and value < 0:
            self._fail(key, "must not be negative")
        return value

    def one_of(self, key, choices, default):
        value = self.get(key, str, default)
        if value is not None and value not in choices:
            self._fail(key, f"expected one of {', '.join(choices)}, got {value!r}")
        return value

    def names(self, key):
        """A list of non-empty strings (aliases, fallbacks)."""
        value = self.get(key, list, [])
        if not all(isinstance(item, str) and item for item in value):
            self._fail(key, "expected a list of names")
        return tuple(value)

    def secret(self, key, env):
        """A secret: ``"env:NAME"`` reads the environment; a literal is accepted but discouraged."""
        value = self.get(key, str)
        if value is None:
            return None
        if value.startswith("env:"):
            name = value[4:]
            if name not in env or not env[name]:
                self._fail(key, f"environment variable {name} is not set")
            return clean_secret(env[name], f"{self.source}: {self.where}.{key} (environment variable {name})")
        return clean_secret(value, f"{self.source}: {self.where}.{key}")

    def header_names(self, key, default=()):
        """A list of header field names (tokens), lower-cased."""
        value = self.get(key, list, list(default))
        if not all(isinstance(item, str) and _is_token(item) for item in value):
            self._fail(key, "expected a list of header names")
        return tuple(item.lower() for item in value)

    def finish(self):
        unknown = sorted(set(self.table) - self.read)
        if unknown:
            self._fail(unknown[0], "unknown key")


_TOKEN_CHARS = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def _is_token(text):
    return bool(text) and all(c in _TOKEN_CHARS for c in text)


def clean_secret(value, where):
    """A key as it goes into a header: surrounding whitespace (a mounted secret's trailing newline)
    stripped; anything else outside visible ASCII refused, naming where it came from, never the
    value."""
    value = value.strip()
    if not value:
        raise ConfigError(f"{where}: the key is empty")
    if not all("!" <= c <= "~" for c in value):
        raise ConfigError(f"{where}: the key holds a space, a control or a non-ASCII character")
    return value


def _check_header_value(value):
    """A configured header value goes into every upstream request as it is: visible characters,
    spaces and tabs only (RFC 9110 section 5.5)."""
    return isinstance(value, str) and all(c == "\t" or " " <= c <= "~" or c > "\x7f" for c in value)


def _check_base_url(source, where, url, key="base_url"):
    try:
        parts = split_url(url)
    except ValueError as error:
        raise ConfigError(f"{source}: {where}.{key}: expected an http(s) URL, got {_shown(url)!r} ({error})") from None
    if parts.scheme not in ("http", "https") or not parts.host:
        raise ConfigError(f"{source}: {where}.{key}: expected an http(s) URL, got {_shown(url)!r}")
    return url.rstrip("/")


def _shown(url):
    """``url`` as a message may print it: a password in it (``user:secret@``) left out."""
    scheme, sep, rest = url.partition("://")
    authority, slash, path = rest.partition("/")
    if "@" in authority:
        authority = "***@" + authority.rpartition("@")[2]
    return scheme + sep + authority + slash + path
