"""Issue 10, as an attacker tries it against the running gateway: no byte a client sends becomes a
header, a request line or a path it was not meant to be, and nothing that names the account behind
the provider key passes between client and upstream. Each test failed on the code before the fix.

Every reply is read by h11 as a client would (``parse_responses``): one whole, well-formed response
per request, nothing after it. What reached the upstream is checked in the mock's request log or,
where the mock cannot play the upstream (Azure paths, headers it never sends), in the raw bytes a
``ScriptedUpstream`` received.
"""

import json
import time
import urllib.request

import pytest

from harness import start_proxy, wait_until
from security_helpers import ScriptedUpstream, json_reply, parse_responses, send_and_read

CHAT = {"messages": [{"role": "user", "content": "hi"}]}
COMPLETION = json.dumps(
    {"id": "c", "object": "chat.completion", "created": 0, "model": "m",
     "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}]}
).encode()  # fmt: skip


def post(path, body, headers=b""):
    """A complete HTTP/1.1 POST that closes the connection after its answer."""
    return b"POST %s HTTP/1.1\r\nhost: gw\r\ncontent-type: application/json\r\n%scontent-length: %d\r\nconnection: close\r\n\r\n%s" % (
        path, headers, len(body), body
    )


def get(path, method=b"GET", headers=b""):
    return b"%s %s HTTP/1.1\r\nhost: gw\r\n%sconnection: close\r\n\r\n" % (method, path, headers)


def one_answer(gateway, raw):
    """The single response the gateway gave to ``raw`` (fails if there were more, or none)."""
    [answer] = parse_responses(send_and_read(gateway.port, raw))
    return answer


def listed_gateway(start_gateway, mock, env=None):
    """A gateway in front of ``mock`` whose [[models]] list allows gpt-4o-mini only."""
    return start_gateway(
        config=f"""
        [providers.openai]
        base_url = "{mock.base}/v1"
        api_key = "env:K"

        [[models]]
        name = "gpt-4o-mini"
        provider = "openai"
        """,
        env={"K": "sk-provider", **(env or {})},
    )


@pytest.fixture
def scripted():
    started = []

    def start(reply):
        upstream = ScriptedUpstream(reply)
        started.append(upstream)
        return upstream

    yield start
    for upstream in started:
        upstream.stop()


# --- 1. the model cannot write response headers ---------------------------------------------------

SPLITTING = (
    "gpt-4o\r\nSet-Cookie: session=attacker\r\nContent-Length: 0\r\n\r\n"
    "HTTP/1.1 200 OK\r\nX-Injected: yes\r\nContent-Length: 2\r\n\r\nhi"
)


@pytest.mark.parametrize("encode", ["json-escape", "raw-bytes"])
def test_a_model_with_crlf_cannot_split_the_response(start_gateway, mock, encode):
    """Both spellings: JSON's escaped \\r\\n (which decodes to CR LF) and raw CR LF bytes."""
    gateway = start_proxy(start_gateway, mock)
    body = json.dumps({"model": SPLITTING, **CHAT}).encode()
    if encode == "raw-bytes":
        body = body.replace(b"\\r\\n", b"\r\n")
    status, headers, payload = one_answer(gateway, post(b"/v1/chat/completions", body))
    assert status == 400
    assert json.loads(payload)["error"]["param"] == "model"
    assert "set-cookie" not in headers and "x-injected" not in headers
    assert mock.requests() == []


def test_a_model_unfit_for_a_header_is_refused_even_when_unrouted(start_gateway, mock):
    """With a [[models]] list the name is not routed at all, and still never echoed raw."""
    gateway = listed_gateway(start_gateway, mock)
    for model in ("nope\r\nSet-Cookie: a=b", "x" * 257, "tab\there", "nul\x00"):
        status, headers, payload = one_answer(gateway, post(b"/v1/chat/completions", json.dumps({"model": model, **CHAT}).encode()))
        assert status == 400, model
        assert "set-cookie" not in headers
        assert json.loads(payload)["error"]["param"] == "model"


# --- 2. Azure: the model never leaves its path segment -----------------------------------------------


def azure_gateway(start_gateway, upstream):
    return start_gateway(
        config=f"""
        default_provider = "azure"

        [providers.azure]
        kind = "azure"
        base_url = "{upstream.base}"
        api_key = "env:AZ"
        api_version = "2024-10-21"
        """,
        env={"AZ": "az-provider-key"},
    )


@pytest.mark.parametrize(
    "model",
    [
        "azure/x HTTP/1.1\r\nHost: evil\r\ncontent-length: 0\r\n\r\nDELETE /openai/files/f HTTP/1.1\r\nX-Ignore: ",
        "azure/../../../openai/files",
        "azure/..",
        "azure/a/b",
        "azure/a%2Fb",
        "azure/x?api-version=evil#",
        "../../openai/files",
    ],
)
def test_an_azure_model_cannot_pick_another_request_or_path(start_gateway, scripted, model):
    upstream = scripted(json_reply(COMPLETION))
    gateway = azure_gateway(start_gateway, upstream)
    status, _, payload = one_answer(gateway, post(b"/v1/chat/completions", json.dumps({"model": model, **CHAT}).encode()))
    assert status == 400, payload
    assert json.loads(payload)["error"]["param"] == "model"
    assert upstream.received == []


def test_an_azure_deployment_is_reached_with_the_gateways_api_version_only(start_gateway, scripted):
    upstream = scripted(json_reply(COMPLETION))
    gateway = azure_gateway(start_gateway, upstream)
    body = json.dumps({"model": "azure/gpt4o-prod", **CHAT}).encode()
    status, _, _ = one_answer(gateway, post(b"/v1/chat/completions?api-version=2099-01-01&x=1", body))
    assert status == 200
    [request] = upstream.received
    line = request.split(b"\r\n", 1)[0]
    assert line == b"POST /openai/deployments/gpt4o-prod/chat/completions?x=1&api-version=2024-10-21 HTTP/1.1"
    assert request.lower().count(b"\r\napi-key: az-provider-key\r\n") == 1


# --- 3. paths: normalized before routing, passthrough follows an allow-list ------------------------------


@pytest.fixture
def listed(start_gateway, mock):
    """A gateway whose [[models]] list allows gpt-4o-mini only."""
    return listed_gateway(start_gateway, mock)


@pytest.mark.parametrize("path", [b"/v1//chat/completions", b"/v1/chat/completions/", b"//v1/chat//completions"])
def test_other_spellings_of_a_model_endpoint_meet_the_model_allow_list(listed, mock, path):
    status, _, payload = one_answer(listed, post(path, json.dumps({"model": "gpt-4-unlisted", **CHAT}).encode()))
    assert status == 404 and json.loads(payload)["error"]["code"] == "model_not_found"
    assert mock.requests() == []
    status, _, _ = one_answer(listed, post(path, json.dumps({"model": "gpt-4o-mini", **CHAT}).encode()))
    assert status == 200
    assert [r["path"] for r in mock.requests()] == ["/v1/chat/completions"]


@pytest.mark.parametrize(
    "path",
    [b"/v1/./chat/completions", b"/v1/chat%2Fcompletions", b"/v1/../../admin?x=1", b"/v1/%2e%2e/admin",
     b"/v1/files/..", b"/v1/files\\x", b"/v1/files/..;/content", b"/v1/models/..;"],
)  # fmt: skip
def test_dot_segments_and_encoded_separators_are_refused_before_anything_is_sent(listed, mock, path):
    status, _, payload = one_answer(listed, post(path, json.dumps({"model": "gpt-4o-mini", **CHAT}).encode()))
    assert status == 400
    assert json.loads(payload)["error"]["code"] == "invalid_path"
    assert mock.requests() == []


@pytest.mark.parametrize("target", [b"*", b"v1/models", b"api.example:443"])
def test_a_target_in_no_form_a_gateway_serves_is_a_400(listed, mock, target):
    # RFC 9112 section 3.2: origin-form, absolute-form, or "*" for OPTIONS alone.
    status, _, payload = one_answer(listed, get(target))
    assert status == 400 and json.loads(payload)["error"]["message"] == "invalid request target"
    assert mock.requests() == []


def test_passthrough_follows_the_allow_list(listed, mock):
    status, _, payload = one_answer(listed, get(b"/v1/fine_tuning/jobs"))
    assert status == 404 and "allow-list" in json.loads(payload)["error"]["message"]
    status, headers, _ = one_answer(listed, get(b"/v1/files/file-1", method=b"PUT"))
    assert status == 405 and headers["allow"] == ["DELETE, GET, HEAD"]
    assert mock.requests() == []
    one_answer(listed, get(b"/v1/files/file-1"))  # allowed: it reaches the upstream
    assert [(r["method"], r["path"]) for r in mock.requests()] == [("GET", "/v1/files/file-1")]


def test_the_allow_list_is_configurable(start_gateway, mock):
    gateway = start_gateway(
        config=f"""
        [providers.openai]
        base_url = "{mock.base}/v1"
        api_key = "env:K"

        [passthrough]
        allow = ["GET /v1/fine_tuning/jobs", "GET /v1/fine_tuning/jobs/*/events"]
        """,
        env={"K": "sk-provider"},
    )
    one_answer(gateway, get(b"/v1/fine_tuning/jobs"))
    one_answer(gateway, get(b"/v1/fine_tuning/jobs/ft-1/events?limit=2"))
    assert one_answer(gateway, get(b"/v1/files"))[0] == 404  # no longer on the list
    assert [r["path"] for r in mock.requests()] == ["/v1/fine_tuning/jobs", "/v1/fine_tuning/jobs/ft-1/events?limit=2"]


# --- 4. provider-scoped headers: the operator's, never the client's ----------------------------------------

SCOPED = (
    b"openai-organization: org-client\r\nopenai-project: proj-client\r\n"
    b"anthropic-beta: client-beta\r\nx-goog-user-project: someone-else\r\nx-trace: t-1\r\n"
    b"cookie: portal_session=s3cr3t\r\n"
)


def test_configured_headers_replace_the_clients_and_scoped_ones_are_dropped(start_gateway, mock):
    gateway = start_gateway(
        config=f"""
        [providers.openai]
        base_url = "{mock.base}/v1"
        api_key = "env:K"
        headers = {{ "OpenAI-Organization" = "org-gateway" }}
        """,
        env={"K": "sk-provider"},
    )
    body = json.dumps({"model": "gpt-4o-mini", **CHAT}).encode()
    assert one_answer(gateway, post(b"/v1/chat/completions", body, SCOPED))[0] == 200
    [received] = mock.requests()
    headers = received["headers"]
    assert headers["openai-organization"] == "org-gateway"  # once: a repeated header would read "a, b"
    for name in ("openai-project", "anthropic-beta", "x-goog-user-project"):
        assert name not in headers
    assert headers["x-trace"] == "t-1"


def test_the_default_policy_forwards_the_clients_own_fields_only(start_gateway, mock):
    """A provider without configured or let-through headers sends the lines the core's parser wrote
    as it read the client's head; a head that repeats a name or names fields in Connection is
    filtered from the dict instead. Either way: the client's own fields, nothing else."""
    gateway = start_gateway(
        config=f"""
        [providers.openai]
        base_url = "{mock.base}/v1"
        api_key = "env:K"
        """,
        env={"K": "sk-provider"},
    )
    body = json.dumps({"model": "gpt-4o-mini", **CHAT}).encode()
    credentials = b"Authorization: Bearer client-secret\r\nX-Api-Key: client-secret\r\nTE: trailers\r\n"
    assert one_answer(gateway, post(b"/v1/chat/completions", body, SCOPED + credentials))[0] == 200
    repeated = b"X-Dup: 1\r\nx-dup: 2\r\nConnection: keep-alive, X-Hop\r\nX-Hop: gone\r\n"
    assert one_answer(gateway, post(b"/v1/chat/completions", body, SCOPED + credentials + repeated))[0] == 200
    first, second = (received["headers"] for received in mock.requests())
    for headers in (first, second):
        assert headers["x-trace"] == "t-1" and headers["authorization"] == "Bearer sk-provider"
        for name in ("openai-organization", "openai-project", "anthropic-beta", "x-goog-user-project", "cookie",
                     "x-api-key", "te", "x-hop"):
            assert name not in headers, name
        assert "client-secret" not in str(headers)
    assert second["x-dup"] == "1, 2" and "x-dup" not in first


def test_a_provider_may_let_named_client_headers_through(start_gateway, mock):
    gateway = start_gateway(
        config=f"""
        [providers.openai]
        base_url = "{mock.base}/v1"
        api_key = "env:K"
        forward_client_headers = ["OpenAI-Project", "anthropic-beta", "Cookie"]
        """,
        env={"K": "sk-provider"},
    )
    body = json.dumps({"model": "gpt-4o-mini", **CHAT}).encode()
    assert one_answer(gateway, post(b"/v1/chat/completions", body, SCOPED))[0] == 200
    headers = mock.requests()[0]["headers"]
    assert (headers["openai-project"], headers["anthropic-beta"]) == ("proj-client", "client-beta")
    assert headers["cookie"] == "portal_session=s3cr3t"  # let through by name, like the account headers
    assert "openai-organization" not in headers and "x-goog-user-project" not in headers


# --- 7. keys from mounted secrets ---------------------------------------------------------------------------


def test_keys_with_surrounding_whitespace_are_stripped(start_gateway, mock):
    gateway = start_gateway(
        config=f"""
        [providers.openai]
        base_url = "{mock.base}/v1"
        api_key = "env:K"
        """,
        env={"K": "sk-provider\n", "ALLOY_MASTER_KEY": "  mk-gateway\r\n"},
    )
    body = json.dumps({"model": "gpt-4o-mini", **CHAT}).encode()
    status, _, payload = one_answer(gateway, post(b"/v1/chat/completions", body, b"authorization: Bearer mk-gateway\r\n"))
    assert status == 200, payload  # the strict mock accepted "sk-provider" exactly
    assert mock.requests()[0]["headers"]["authorization"] == "Bearer sk-provider"


@pytest.mark.parametrize("variable", ["K", "ALLOY_MASTER_KEY"])
def test_a_key_with_a_control_character_stops_the_start_naming_the_variable_not_the_value(start_gateway, mock, variable):
    env = {"K": "sk-provider", variable: "sk-se\x01cret-value"}
    with pytest.raises(RuntimeError) as info:
        start_gateway(
            config=f"""
            [providers.openai]
            base_url = "{mock.base}/v1"
            api_key = "env:K"
            """,
            env=env,
        )
    message = str(info.value)
    assert variable in message and "control" in message
    assert "cret-value" not in message


# --- 8. upstream owner identifiers stay upstream ----------------------------------------------------------

OWNER_HEADERS = (
    b"openai-organization: org-secret-owner\r\nopenai-project: proj_secret\r\n"
    b"set-cookie: __cf_bm=upstream; path=/\r\nx-ratelimit-remaining-requests: 99\r\n"
)


def owner_gateway(start_gateway, upstream, extra=""):
    return start_gateway(
        config=f"""
        [providers.openai]
        base_url = "{upstream.base}/v1"
        api_key = "env:K"
        {extra}
        """,
        env={"K": "sk-provider"},
    )


def test_upstream_account_headers_are_hidden_from_clients(start_gateway, scripted):
    gateway = owner_gateway(start_gateway, scripted(json_reply(COMPLETION, OWNER_HEADERS)))
    status, headers, _ = one_answer(gateway, post(b"/v1/chat/completions", json.dumps({"model": "m", **CHAT}).encode()))
    assert status == 200
    for name in ("openai-organization", "openai-project", "set-cookie"):
        assert name not in headers
    assert headers["x-ratelimit-remaining-requests"] == ["99"]


def test_the_upstreams_request_id_travels_under_its_own_name(start_gateway, scripted):
    """One x-request-id reaches the client (the gateway's, the one in its logs), never two."""
    gateway = owner_gateway(start_gateway, scripted(json_reply(COMPLETION, b"x-request-id: req_upstream_1\r\n")))
    _, headers, _ = one_answer(gateway, post(b"/v1/chat/completions", json.dumps({"model": "m", **CHAT}).encode(), b"x-request-id: mine-1\r\n"))
    assert headers["x-request-id"] == ["mine-1"]
    assert headers["x-upstream-request-id"] == ["req_upstream_1"]


def test_headers_alloy_sets_itself_come_from_alloy_only(start_gateway, scripted):
    """An upstream (another Alloy, or one spoofing) sending x-alloy-* or x-upstream-request-id, or
    an Alt-Svc for the gateway's own origin: the client sees Alloy's values alone."""
    spoofing = (
        b"x-alloy-provider: spoofed\r\nx-alloy-attempts: 99\r\nx-alloy-overhead-us: 1\r\n"
        b"x-upstream-request-id: fake\r\nalt-svc: h3=\":443\"\r\nx-request-id: req_2\r\n"
    )
    gateway = owner_gateway(start_gateway, scripted(json_reply(COMPLETION, spoofing)))
    status, headers, _ = one_answer(gateway, post(b"/v1/chat/completions", json.dumps({"model": "m", **CHAT}).encode()))
    assert status == 200
    assert headers["x-alloy-provider"] == ["openai"] and headers["x-alloy-attempts"] == ["1"]
    assert len(headers["x-alloy-overhead-us"]) == 1 and headers["x-upstream-request-id"] == ["req_2"]
    assert "alt-svc" not in headers


def test_upstream_headers_reach_the_client_as_the_core_parsed_them(start_gateway, scripted):
    """The client's header lines are written by the core while it parses the upstream's head:
    repeated fields stay separate and in order, names are lower-cased, values trimmed, and the
    hidden names are left out whatever their case."""
    upstream_head = b"X-Dup: a\r\nx-dup: b\r\nX-Spaced:   v  \r\nSET-COOKIE: s=1\r\nOpenAI-Organization: org-x\r\nX-Empty:\r\n"
    gateway = owner_gateway(start_gateway, scripted(json_reply(COMPLETION, upstream_head)))
    status, headers, _ = one_answer(gateway, post(b"/v1/chat/completions", json.dumps({"model": "m", **CHAT}).encode()))
    assert status == 200
    assert headers["x-dup"] == ["a", "b"] and headers["x-spaced"] == ["v"] and headers["x-empty"] == [""]
    assert "set-cookie" not in headers and "openai-organization" not in headers


def test_fields_the_upstream_names_in_connection_stay_on_its_connection(start_gateway, scripted):
    """RFC 9110 section 7.6.1: ``Connection: X-Secret-Hop`` makes X-Secret-Hop hop-by-hop."""
    upstream_head = b"X-Secret-Hop: leak\r\nConnection: X-Secret-Hop, keep-alive\r\nX-Kept: yes\r\n"
    gateway = owner_gateway(start_gateway, scripted(json_reply(COMPLETION, upstream_head)))
    status, headers, _ = one_answer(gateway, post(b"/v1/chat/completions", json.dumps({"model": "m", **CHAT}).encode()))
    assert status == 200 and headers["x-kept"] == ["yes"]
    assert "x-secret-hop" not in headers


def test_hidden_upstream_headers_are_configurable(start_gateway, scripted):
    gateway = owner_gateway(start_gateway, scripted(json_reply(COMPLETION, OWNER_HEADERS)), 'hidden_response_headers = ["set-cookie"]')
    _, headers, _ = one_answer(gateway, post(b"/v1/chat/completions", json.dumps({"model": "m", **CHAT}).encode()))
    assert headers["openai-organization"] == ["org-secret-owner"]
    assert "set-cookie" not in headers


# --- 9. readiness details and the open-relay warning ----------------------------------------------------------


def test_readiness_details_need_the_master_key(start_gateway, mock):
    gateway = listed_gateway(start_gateway, mock, {"ALLOY_MASTER_KEY": "mk-1"})
    status, _, payload = one_answer(gateway, get(b"/health/ready"))
    assert (status, json.loads(payload)) == (200, {"status": "ready"})
    status, _, payload = one_answer(gateway, get(b"/health/ready", headers=b"authorization: Bearer mk-1\r\n"))
    assert status == 200 and "gpt-4o-mini" in json.loads(payload)["models"]


def test_listening_beyond_loopback_without_a_master_key_warns(start_gateway, mock):
    open_gateway = start_gateway(config=None, args=["--host", "0.0.0.0"])
    with urllib.request.urlopen(open_gateway.base + "/health", timeout=5) as answer:
        assert answer.status == 200
    assert "WARNING" in open_gateway.stderr and "master key" in open_gateway.stderr
    keyed = start_gateway(config=None, env={"ALLOY_MASTER_KEY": "mk-1"}, args=["--host", "0.0.0.0"])
    local = start_gateway(config=None)
    assert "WARNING" not in keyed.stderr and "WARNING" not in local.stderr


# --- 9. the wait for an upstream's head is bounded however it trickles --------------------------------

HEAD_BOUND = "first_byte_timeout = 1\n\n[router]\nmax_retries = 0\n"


def trickled_head(request):
    # The final head one byte every 0.2 s: about 20 s for the whole of it.
    for byte in b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}":
        time.sleep(0.2)
        yield bytes([byte])


def interim_answers(request):
    # 102 Processing every 0.3 s for about 6 s, then the answer.
    for _ in range(20):
        time.sleep(0.3)
        yield b"HTTP/1.1 102 Processing\r\n\r\n"
    yield json_reply(COMPLETION)(request)


@pytest.mark.parametrize("reply", [trickled_head, interim_answers])
def test_first_byte_timeout_bounds_the_wait_for_the_final_head(start_gateway, scripted, reply):
    gateway = owner_gateway(start_gateway, scripted(reply), HEAD_BOUND)
    started = time.monotonic()
    status, _, body = one_answer(gateway, post(b"/v1/chat/completions", json.dumps({"model": "m", **CHAT}).encode()))
    assert status == 504 and b"did not send a complete response head within 1 s" in body, body
    assert time.monotonic() - started < 3.5  # first_byte_timeout 1 s, swept once a second


def broken_mid_event(request):
    event = b'data: {"id":"c","object":"chat.completion.chunk","created":0,"model":"m","choices":[{"index":0,"delta":{"content":"hi"}}]}\n\n'
    partial = b'data: {"id":"c","object":"chat.com'
    yield b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
    yield b"%x\r\n%s\r\n%x\r\n%s\r\n" % (len(event), event, len(partial), partial)
    raise OSError("the upstream goes away inside an event")  # closes without the last chunk


def test_a_stream_broken_inside_an_event_raises_the_sdks_api_error(start_gateway, scripted):
    import openai

    gateway = owner_gateway(start_gateway, scripted(broken_mid_event), HEAD_BOUND)
    client = openai.OpenAI(base_url=gateway.base + "/v1", api_key="k", max_retries=0)
    received = []
    with pytest.raises(openai.APIError) as raised:  # not a JSONDecodeError of a glued event
        for chunk in client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}], stream=True):
            received.append(chunk.choices[0].delta.content)
    assert received == ["hi"] and "upstream" in str(raised.value)


def test_a_head_answer_keeps_the_length_the_upstream_announced(start_gateway, scripted):
    import http.client

    head_reply = lambda request: b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 177\r\n\r\n"  # noqa: E731
    gateway = owner_gateway(start_gateway, scripted(head_reply))
    connection = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=10)
    connection.request("HEAD", "/v1/models")
    answer = connection.getresponse()
    answer.read()
    assert answer.status == 200 and answer.getheader("content-length") == "177"  # it said 0 once
    connection.request("HEAD", "/v1/models")  # and the connection is still good for the next
    assert connection.getresponse().status == 200
    connection.close()


def error_stream_without_an_end(request):
    body = b'data: {"error":{"message":"boom","type":"server_error"}}'  # no blank line after it
    return b"HTTP/1.1 500 Internal Server Error\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)


def test_a_held_error_stream_is_relayed_whole_even_without_a_last_blank_line(start_gateway, scripted):
    # A retryable answer is held (read whole) in case another attempt replaces it; relayed in the
    # end, its event cut at the last blank line lost everything after it (an empty 500).
    retry_fast = "\n[router]\nmax_retries = 1\nbackoff_base = 0.001\nbackoff_max = 0.002\n"
    gateway = owner_gateway(start_gateway, scripted(error_stream_without_an_end), retry_fast)
    status, _, body = one_answer(gateway, post(b"/v1/chat/completions", json.dumps({"model": "m", **CHAT, "stream": True}).encode()))
    assert status == 500 and b'"message":"boom"' in body, body


def stream_then_a_late_end(request):
    events = (
        b'data: {"id":"c","object":"chat.completion.chunk","created":0,"model":"m","choices":[{"index":0,"delta":{"content":"hi"}}]}\n\n'
        b'data: {"id":"c","object":"chat.completion.chunk","created":0,"model":"m","choices":[],"usage":{"prompt_tokens":11,"completion_tokens":7,"total_tokens":18}}\n\n'
        b"data: [DONE]\n\n"
    )
    yield b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n%x\r\n%s\r\n" % (len(events), events)
    time.sleep(2)  # the SDK has closed at [DONE] by then
    yield b"0\r\n\r\n"


def test_a_client_that_leaves_at_done_has_its_hidden_usage_counted(start_gateway, scripted):
    import openai

    from metrics_helpers import scrape

    gateway = owner_gateway(start_gateway, scripted(stream_then_a_late_end), "\n[server]\nstream_usage = true\n")
    client = openai.OpenAI(base_url=gateway.base + "/v1", api_key="k", max_retries=0)
    chunks = list(client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}], stream=True))
    assert [c.choices[0].delta.content for c in chunks] == ["hi"] and all(c.usage is None for c in chunks)
    assert wait_until(lambda: scrape(gateway.base).total("alloy_tokens_total") == 18, 5), scrape(gateway.base).series("alloy_tokens_total")
