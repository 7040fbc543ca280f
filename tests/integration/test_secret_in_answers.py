"""The provider key never reaches a client, even when the provider's error answer repeats it (some
OpenAI-compatible servers answer "invalid key: sk-..."): the gateway masks it in every error
answer it relays, passthrough or translated, and in the head of any answer, keeping the first 3 and last 4 characters as OpenAI's
own messages do, and the answer's length true (the SDK reads it whole)."""

import http.client
import json
import time

import openai
import pytest

from harness import assert_no_crash_logged, start_gateway_process
from security_helpers import ScriptedUpstream

KEY = "sk-provider-0123456789abcdef"
MASKED = "sk-" + "*" * (len(KEY) - 7) + "cdef"


def echoing_key(kind):
    """An upstream answering 401 with a body that repeats the key, in ``kind``'s error shape."""
    if kind == "anthropic":
        body = {"type": "error", "error": {"type": "authentication_error", "message": f"invalid x-api-key: {KEY}"}}
    else:
        body = {"error": {"message": f"Incorrect API key provided: {KEY}", "type": "invalid_request_error", "code": "invalid_api_key"}}
    data = json.dumps(body).encode()
    head = b"HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\ncontent-length: %d\r\n" % len(data)
    head += b'www-authenticate: Bearer error="invalid_token", error_description="unknown key %s"\r\n' % KEY.encode()
    return ScriptedUpstream(lambda request: head + b"\r\n" + data)


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_an_error_answer_repeating_the_provider_key_reaches_the_client_masked(tmp_path, kind):
    upstream = echoing_key(kind)
    port, stop = upstream.port, upstream.stop
    config = f"""
    [providers.up]
    kind = "{kind}"
    base_url = "http://127.0.0.1:{port}{'/v1' if kind == 'openai' else ''}"
    api_key = "{KEY}"

    [[models]]
    name = "m"
    provider = "up"
    model = "claude-sonnet-4-5"
    """
    gateway = start_gateway_process(tmp_path / "alloy.toml", config)
    try:
        client = openai.OpenAI(base_url=gateway.base + "/v1", api_key="client", max_retries=0)
        with pytest.raises(openai.AuthenticationError) as caught:
            client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
        said = caught.value.response.text
        assert KEY not in said and MASKED in said, said
        headers = str(caught.value.response.headers)
        assert KEY not in headers, headers  # nor in a header of the answer
        assert_no_crash_logged(gateway)
    finally:
        gateway.stop()
        stop()


def key_split_between_reads(status, framing):
    """An upstream answering ``status`` with the key in its message, written in two pieces cut
    inside the key, the second after a pause: the gateway reads them apart. ``framing``: sized,
    chunked, or ended by closing the connection."""
    data = json.dumps({"error": {"message": f"Incorrect API key provided: {KEY}", "type": "invalid_request_error"}}).encode()
    cut = data.index(KEY.encode()) + len(KEY) // 2
    reason = {401: b"Unauthorized", 500: b"Internal Server Error"}[status]
    head = b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\n" % (status, reason)
    if framing == "chunked":
        head += b"transfer-encoding: chunked\r\n\r\n"
        first, second = b"%x\r\n%s\r\n" % (cut, data[:cut]), b"%x\r\n%s\r\n0\r\n\r\n" % (len(data) - cut, data[cut:])
    else:
        head += b"content-length: %d\r\n\r\n" % len(data) if framing == "sized" else b"connection: close\r\n\r\n"
        first, second = data[:cut], data[cut:]

    def reply(request):
        yield head + first
        time.sleep(0.15)
        yield second
        if framing == "close":
            raise OSError("the answer ends at the connection's close")

    return ScriptedUpstream(reply), data


@pytest.mark.parametrize("status", [401, 500])
@pytest.mark.parametrize("framing", ["sized", "chunked", "close"])
def test_a_key_cut_between_two_reads_of_the_error_answer_is_masked_all_the_same(tmp_path, status, framing):
    upstream, data = key_split_between_reads(status, framing)
    config = f"""
    [router]
    max_retries = 1
    backoff_base = 0.001

    [providers.up]
    kind = "openai"
    base_url = "http://127.0.0.1:{upstream.port}/v1"
    api_key = "{KEY}"
    """
    gateway = start_gateway_process(tmp_path / "alloy.toml", config)
    try:
        client = openai.OpenAI(base_url=gateway.base + "/v1", api_key="client", max_retries=0)
        with pytest.raises(openai.APIStatusError) as caught:
            client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
        assert caught.value.status_code == status
        said = caught.value.response.text
        assert KEY not in said and MASKED in said, said
        assert said.encode() == data.replace(KEY.encode(), MASKED.encode())  # nothing lost, nothing added
        assert len(upstream.received) == (2 if status == 500 else 1)
        assert_no_crash_logged(gateway)
    finally:
        gateway.stop()
        upstream.stop()


def test_a_placeholder_key_of_a_few_characters_leaves_error_answers_as_they_are(start_mock, start_gateway):
    # A local server takes any key, and its configuration says "x" or "e": masking every "e" of an
    # error answer made it {"*rror": {"m*ssag*": ...}}, which no SDK reads.
    mock = start_mock()
    gateway = start_gateway(config=f'[providers.local]\nkind = "openai"\nbase_url = "{mock.base}/v1"\napi_key = "e"\n')
    client = openai.OpenAI(base_url=gateway.base + "/v1", api_key="client", max_retries=0)
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="local/m", messages=[{"role": "user", "content": "hi"}], extra_headers={"x-mock-fault": "status=400"})
    assert caught.value.body["message"] == "Injected by x-mock-fault: status 400."


@pytest.mark.parametrize(
    "status_line, extra",
    [(b"200 OK", b"x-debug-authorization: Bearer %s\r\n"), (b"302 Found", b"location: https://example.invalid/?key=%s\r\n")],
    ids=["a success echoing the request's headers", "a redirect"],
)
def test_a_head_repeating_the_provider_key_reaches_the_client_masked_whatever_its_status(tmp_path, status_line, extra):
    # Only error answers were masked: a server that echoes the request's headers (a debugging proxy)
    # or a redirect carrying the key handed it to the client in a head of another status.
    data = b'{"object": "list", "data": []}'
    head = b"HTTP/1.1 " + status_line + b"\r\ncontent-type: application/json\r\ncontent-length: %d\r\n" % len(data)
    upstream = ScriptedUpstream(lambda request: head + extra % KEY.encode() + b"\r\n" + data)
    config = f"""
    [providers.up]
    base_url = "http://127.0.0.1:{upstream.port}/v1"
    api_key = "{KEY}"
    """
    gateway = start_gateway_process(tmp_path / "alloy.toml", config)
    try:
        connection = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=10)
        connection.request("GET", "/v1/files")
        response = connection.getresponse()
        body = response.read()
        connection.close()
        assert response.status == int(status_line[:3]) and body == data
        said = "\n".join(f"{name}: {value}" for name, value in response.getheaders())
        assert KEY not in said and MASKED in said, said
        assert_no_crash_logged(gateway)
    finally:
        gateway.stop()
        upstream.stop()
