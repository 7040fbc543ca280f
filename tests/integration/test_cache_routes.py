"""Which upstream request a cached answer stands for: a provider route, a configured model's
deployments, a reload that moves a model, a fallback that answered. Two strict mocks, so the
request log of each says which provider really answered; the client is the official SDK.

Also what the access log and metrics say of a hit, and the one pair of controls that must not
delete a live entry (``no-cache`` with a TTL of 0: "not stored at all").
"""

import json
import urllib.request
import uuid

import openai

from harness import wait_until

MASTER = "master-key"


def config(one, two, models="", log=""):
    return f"""
    [server]
    master_key = "{MASTER}"
    [router]
    max_retries = 0
    [providers.p1]
    kind = "openai"
    base_url = "{one.base}/v1"
    api_key = "env:K"
    [providers.p2]
    kind = "openai"
    base_url = "{two.base}/v1"
    api_key = "env:K"
    [wildcards]
    "gpt-*" = "p1"
    [cache]
    enabled = true
    {log}
    {models}
    """


FAST = '[[models]]\nname = "fast"\nprovider = "p1"\nmodel = "m-fast"\n'


def start(start_gateway, start_mock, models=FAST, log="", first=()):
    one, two = start_mock("--api-key", "sk-provider", *first), start_mock("--api-key", "sk-provider")
    gateway = start_gateway(config=config(one, two, models, log), env={"K": "sk-provider"})
    return gateway, one, two


def chat(gateway, model, text, headers=None):
    sdk = openai.OpenAI(base_url=gateway.base + "/v1", api_key=MASTER, max_retries=0, timeout=30)
    raw = sdk.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": text}], extra_headers=headers or {}
    )
    return raw.headers.get("x-alloy-cache"), raw.parse()


def chats(mock):
    return len([r for r in mock.requests() if r["path"] == "/v1/chat/completions"])


def reload(gateway):
    request = urllib.request.Request(gateway.base + "/admin/reload", method="POST", headers={"authorization": f"Bearer {MASTER}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def test_two_providers_never_share_an_answer(start_gateway, start_mock):
    gateway, one, two = start(start_gateway, start_mock)
    text = uuid.uuid4().hex
    assert chat(gateway, "p1/gpt-x", text)[0] == "miss"
    assert chat(gateway, "p2/gpt-x", text)[0] == "miss"  # another provider: another request
    assert chat(gateway, "gpt-x", text)[0] == "hit"  # the wildcard sends it where p1/gpt-x went
    assert chat(gateway, "fast", text)[0] == "miss"  # p1's m-fast
    assert chat(gateway, "p2/fast", text)[0] == "miss"  # p2's "fast": not p1's m-fast
    assert (chats(one), chats(two)) == (2, 2)


def test_a_reload_that_moves_a_model_does_not_answer_from_the_old_route(start_gateway, start_mock, tmp_path):
    gateway, one, two = start(start_gateway, start_mock)
    text = uuid.uuid4().hex
    assert [chat(gateway, "fast", text)[0] for _ in range(2)] == ["miss", "hit"]
    path = tmp_path / "alloy-0.toml"
    path.write_text(path.read_text().replace('provider = "p1"\nmodel = "m-fast"', 'provider = "p2"\nmodel = "m-fast-v2"'))
    assert reload(gateway)["status"] == "reloaded"
    status, answer = chat(gateway, "fast", text)
    assert status == "miss" and answer.model == "m-fast-v2"
    assert (chats(one), chats(two)) == (1, 1)


def test_an_answer_a_fallback_gave_is_not_stored_for_the_model_asked(start_gateway, start_mock):
    models = (
        '[[models]]\nname = "primary"\nprovider = "p1"\nmodel = "big"\nfallbacks = ["cheap"]\n'
        '[[models]]\nname = "cheap"\nprovider = "p2"\nmodel = "tiny"\ncache = false\n'
    )
    # The primary's first answer is a 503: the fallback answers that request.
    gateway, one, two = start(start_gateway, start_mock, models, first=("--fault", "status=503", "--fail-times", "1"))
    text = uuid.uuid4().hex
    assert chat(gateway, "primary", text)[1].model == "tiny"
    status, answer = chat(gateway, "primary", text)  # the primary is back
    assert status == "miss" and answer.model == "big"
    assert chat(gateway, "primary", text)[0] == "hit"


def test_a_reload_that_turns_a_models_cache_on_says_it_needs_a_restart(start_gateway, start_mock, tmp_path):
    one, two = start_mock("--api-key", "sk-provider"), start_mock("--api-key", "sk-provider")
    gateway = start_gateway(config=config(one, two, FAST).replace("enabled = true", "enabled = false"), env={"K": "sk-provider"})
    path = tmp_path / "alloy-0.toml"
    path.write_text(path.read_text().replace('model = "m-fast"', 'model = "m-fast"\ncache = true'))
    assert reload(gateway)["restart_needed_for"] == ["cache"]  # not silently ignored
    text = uuid.uuid4().hex
    assert [chat(gateway, "fast", text)[0] for _ in range(2)] == [None, None]  # as it says: no cache yet


def test_no_cache_with_a_ttl_of_zero_leaves_the_stored_answer(start_gateway, start_mock):
    gateway, one, _ = start(start_gateway, start_mock)
    text = uuid.uuid4().hex
    assert [chat(gateway, "fast", text)[0] for _ in range(2)] == ["miss", "hit"]
    wipe = {"cache-control": "no-cache", "x-alloy-cache-ttl": "0"}
    assert chat(gateway, "fast", text, wipe)[0] == "bypass"  # asked upstream, stored nowhere
    assert chat(gateway, "fast", text)[0] == "hit"
    assert chats(one) == 2


def test_a_hit_is_logged_with_the_bytes_the_client_got_and_its_first_event(start_gateway, start_mock, tmp_path):
    log = tmp_path / "access.log"
    gateway, _, _ = start(start_gateway, start_mock, log=f'[log]\npath = "{log}"')
    text = uuid.uuid4().hex
    body = json.dumps({"model": "fast", "messages": [{"role": "user", "content": text}]}).encode()
    received = []
    for stream in (False, False, True):
        data = json.loads(body) | ({"stream": True} if stream else {})
        request = urllib.request.Request(
            gateway.base + "/v1/chat/completions", data=json.dumps(data).encode(), method="POST",
            headers={"content-type": "application/json", "authorization": f"Bearer {MASTER}"},
        )  # fmt: skip
        with urllib.request.urlopen(request, timeout=10) as response:
            received.append((response.headers["x-alloy-cache"], response.read()))
    assert [status for status, _ in received] == ["miss", "hit", "hit"]
    assert wait_until(lambda: log.exists() and len(log.read_text().splitlines()) >= 3, 5)
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [line["bytes_out"] for line in lines] == [len(data) for _, data in received]
    assert "ttft_ms" in lines[2] and 0 <= lines[2]["ttft_ms"] <= lines[2]["duration_ms"]
