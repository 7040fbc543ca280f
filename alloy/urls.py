"""The http(s) URLs of a configuration (a provider's ``base_url``, the OTLP endpoint), read into
scheme, host, port and path.

``urllib.parse`` would do, but it imports ``ipaddress``, and the two stay in a gateway's memory
(~0.37 MB) for a few readings at start. What such a URL may hold is little (RFC 3986 section 3):

    scheme "://" [userinfo "@"] host [":" port] [path] ["?" query] ["#" fragment]

The scheme is read case-insensitively and the host lower-cased, as urlsplit does; an IPv6 host is
in brackets (returned without them); the port is digits, 0 to 65535, and an empty port is none.
Userinfo, query and fragment are passed over: a provider is given its key by Alloy, and its path
alone is prefixed to each request's. Unlike urlsplit, a URL holding whitespace or a control
character is refused instead of having them removed.
"""

from typing import NamedTuple


class URL(NamedTuple):
    scheme: str  # lower-case: "http" or "https" for the URLs Alloy reads
    host: str  # lower-case, an IPv6 address without its brackets; "" when the URL names none
    port: int | None  # None when the URL gives none (the scheme's default applies)
    path: str  # "" or from its "/" up to a "?" or "#"


def split_url(url):
    """The parts of ``url``; ValueError when it is not ``scheme://authority...`` or its port is
    not one."""
    if any(c <= " " or c == "\x7f" for c in url):
        raise ValueError("whitespace or a control character in the URL")
    scheme, separator, rest = url.partition("://")
    if not separator or not scheme or not scheme[0].isalpha() or not all(c.isalnum() or c in "+-." for c in scheme):
        raise ValueError("not scheme://...")
    end = len(rest)
    for mark in "/?#":
        found = rest.find(mark)
        if 0 <= found < end:
            end = found
    authority, after = rest[:end], rest[end:]
    path = after
    for mark in "?#":
        path = path.partition(mark)[0]
    host = authority.rpartition("@")[2]  # userinfo is passed over
    port = ""
    if host.startswith("["):
        inside, bracket, port_part = host[1:].partition("]")
        if not bracket or (port_part and not port_part.startswith(":")):
            raise ValueError("an IPv6 host is in brackets, then an optional :port")
        if not inside or not all(c in "0123456789abcdefABCDEF:." for c in inside):
            raise ValueError("not an IP address in brackets")
        host, port = inside, port_part[1:]
    elif ":" in host:
        host, _, port = host.partition(":")
    if port and not (port.isascii() and port.isdigit() and int(port) <= 65535):
        raise ValueError(f"invalid port {port!r}")
    return URL(scheme.lower(), host.lower(), int(port) if port else None, path)


def http_url(host, port):
    """The http URL of ``host:port`` as a client types it (an IPv6 address in brackets, RFC 3986
    section 3.2.2): what the gateway announces."""
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
