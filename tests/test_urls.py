"""alloy.urls reads a configuration's URLs as urllib.parse.urlsplit does (scheme, hostname, port,
path), which it replaces on the start path: every case is read both ways. Where they differ, on
purpose: a URL holding whitespace or a control character, which urlsplit cleans silently, is refused."""

from urllib.parse import urlsplit

import pytest

from alloy.urls import split_url

SAME = [
    "http://127.0.0.1:9/v1",
    "https://api.openai.com/v1",
    "HTTPS://API.Example.com:8443/v1/?x=1#f",
    "http://user:pw@host:81/p",
    "http://[::1]:8080/v1",
    "http://[::1]/",
    "http://a:b@[fe80::1]:1/x",
    "http://host:/v1",
    "http://host",
    "http://host?x=1",
    "http://host#f",
    "http://:80/",
    "https://my-resource.openai.azure.com/openai/deployments/gpt-4o",
    "http://host:0/",
    "http://host:65535/",
    # refused by both
    "http://host:65536/",
    "http://host:abc/",
    "http://host:-1/",
    "http://host:\u0663/",
    "http://[::1/",
    "http://[notanip]/",
]


def urlsplit_reading(url):
    try:
        parts = urlsplit(url)
        return parts.scheme, parts.hostname or "", parts.port, parts.path
    except ValueError:
        return "refused"


def alloy_reading(url):
    try:
        return tuple(split_url(url))
    except ValueError:
        return "refused"


@pytest.mark.parametrize("url", SAME)
def test_read_as_urlsplit_reads_it(url):
    assert alloy_reading(url) == urlsplit_reading(url)


@pytest.mark.parametrize("url", ["http://host/v1\n", " http://host/", "http://ho\tst/", "http://host/\x00", "host:80", "://host/"])
def test_whitespace_control_characters_and_no_scheme_are_refused(url):
    with pytest.raises(ValueError):
        split_url(url)
