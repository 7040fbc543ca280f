"""``GET /metrics`` through a running gateway: every counter and histogram moves by exactly the
requests made, in a strictly checked Prometheus text exposition (metrics_helpers.parse).

Clients are the official ``openai`` SDK and plain HTTP; the upstream is the strict mock, whose
``x-mock-fault`` header makes an attempt fail (a 503 retried once, a reset connection that ends in
Alloy's own 502). With ``--workers 2`` every scrape reports the whole server, whichever worker
answers it.
"""

import http.client
import json
import re
import sys
import threading
import time

import openai
import pytest

from harness import assert_no_crash_logged, wait_until
from metrics_helpers import fetch, parse, scrape

KEY = "sk-provider"

CONFIG = """
[router]
max_retries = 1
backoff_base = 0.001
backoff_max = 0.002
{router}

[providers.openai]
base_url = "{base}/v1"
api_key = "env:K"

[[models]]
name = "fast"
provider = "openai"
model = "gpt-4o-mini"
aliases = ["quick"]

[wildcards]
"gpt-*" = "openai"
{extra}
"""


def start(start_gateway, mock, extra="", router="", env=None, args=()):
    return start_gateway(
        config=CONFIG.format(base=mock.base, extra=extra, router=router), env={"K": KEY, **(env or {})}, args=args
    )


def client(gateway, key="anything"):
    return openai.OpenAI(base_url=gateway.base + "/v1", api_key=key, max_retries=0, timeout=30.0)


def post(gateway, body, headers=None, path="/v1/chat/completions", key=None):
    """(status, parsed JSON body) of one POST on a new connection."""
    host, port = gateway.base.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    all_headers = {"content-type": "application/json", **(headers or {})}
    if key:
        all_headers["authorization"] = f"Bearer {key}"
    connection.request("POST", path, json.dumps(body), all_headers)
    response = connection.getresponse()
    data = response.read()
    connection.close()
    return response.status, data


def chat(model, **extra):
    return {"model": model, "messages": [{"role": "user", "content": "count me"}], **extra}


def delta(after, before, name, **labels):
    return after.value(name, **labels) - before.value(name, **labels)


# --- counters, histograms and tokens ------------------------------------------------------------


def test_counters_and_histograms_move_by_exactly_the_requests_made(start_gateway, mock):
    gateway = start(start_gateway, mock)
    sdk = client(gateway)
    before = scrape(gateway.base)
    usage = {"prompt": 0, "completion": 0}

    def ask(model, **options):
        reply = sdk.chat.completions.create(model=model, messages=[{"role": "user", "content": "count me"}], **options)
        if model == "fast":
            usage["prompt"] += reply.usage.prompt_tokens
            usage["completion"] += reply.usage.completion_tokens

    for _ in range(3):
        ask("fast")
    ask("quick")
    ask("quick")
    ask("gpt-4o")  # routed by the wildcard, not a configured name: model="other"
    for chunk in sdk.chat.completions.create(
        model="fast", messages=[{"role": "user", "content": "stream me"}], stream=True, stream_options={"include_usage": True}
    ):
        if chunk.usage is not None:
            usage["prompt"] += chunk.usage.prompt_tokens
            usage["completion"] += chunk.usage.completion_tokens
    sdk.embeddings.create(model="quick", input="embed me")
    with pytest.raises(openai.NotFoundError):
        ask("no-such-model")  # refused before any call: no model, no provider
    with pytest.raises(openai.InternalServerError):  # 503 twice: the upstream's answer, relayed
        ask("fast", extra_headers={"x-mock-fault": "status=503"})
    with pytest.raises(openai.InternalServerError):  # reset twice: Alloy's own 502
        ask("fast", extra_headers={"x-mock-fault": "reset"})
    after = scrape(gateway.base)

    chat_fast = {"endpoint": "chat/completions", "model": "fast", "provider": "openai"}
    requests = "alloy_requests_total"
    assert delta(after, before, requests, **chat_fast, status_class="2xx") == 4
    assert delta(after, before, requests, **chat_fast, status_class="5xx") == 2
    assert delta(after, before, requests, endpoint="chat/completions", model="quick", provider="openai", status_class="2xx") == 2
    assert delta(after, before, requests, endpoint="chat/completions", model="other", provider="openai", status_class="2xx") == 1
    assert delta(after, before, requests, endpoint="embeddings", model="quick", provider="openai", status_class="2xx") == 1
    assert delta(after, before, requests, endpoint="chat/completions", model="", provider="", status_class="4xx") == 1
    assert after.total(requests) - before.total(requests) == 11

    # Histograms: every call has a total time; the time to first byte where an upstream head was
    # relayed (the 503 too, held for a retry and relayed in the end; not the reset); the overhead
    # for those answered by their first attempt.
    assert delta(after, before, "alloy_request_duration_seconds_count", **chat_fast) == 6
    assert delta(after, before, "alloy_upstream_ttfb_seconds_count", **chat_fast) == 5
    assert delta(after, before, "alloy_overhead_seconds_count", **chat_fast) == 4
    # The 404 was refused before a call existed: counted, but with no clock reads to time it.
    assert after.total("alloy_request_duration_seconds_count") - before.total("alloy_request_duration_seconds_count") == 10
    assert 0 < delta(after, before, "alloy_overhead_seconds_sum", **chat_fast) < delta(
        after, before, "alloy_request_duration_seconds_sum", **chat_fast
    )
    # Time to first token: the one stream, and nothing else.
    assert after.total("alloy_time_to_first_token_seconds_count") - before.total("alloy_time_to_first_token_seconds_count") == 1
    assert delta(after, before, "alloy_time_to_first_token_seconds_count", **chat_fast) == 1
    assert 0 < delta(after, before, "alloy_time_to_first_token_seconds_sum", **chat_fast) < delta(
        after, before, "alloy_request_duration_seconds_sum", **chat_fast
    )
    for name in (
        "alloy_request_duration_seconds", "alloy_upstream_ttfb_seconds", "alloy_overhead_seconds",
        "alloy_time_to_first_token_seconds",
    ):  # fmt: skip
        assert after.families[name][0] == "histogram"

    assert delta(after, before, "alloy_tokens_total", model="fast", kind="prompt") == usage["prompt"] > 0
    assert delta(after, before, "alloy_tokens_total", model="fast", kind="completion") == usage["completion"] > 0
    assert delta(after, before, "alloy_attempts_total", model="fast") == 4 + 2 + 2
    assert delta(after, before, "alloy_retries_total", model="fast") == 2
    assert delta(after, before, "alloy_errors_total", type="invalid_request_error", code="model_not_found") == 1
    assert delta(after, before, "alloy_errors_total", type="server_error", code="bad_gateway") == 1
    assert after.total("alloy_errors_total") - before.total("alloy_errors_total") == 2

    # Gauges, read at the scrape.
    assert after.value("alloy_requests_in_flight") == 0
    assert after.value("alloy_client_connections") >= 1  # the scrape's own
    pool = {state for labels in after.series("alloy_upstream_connections") for key, state in labels if key == "state"}
    assert pool == {"open", "idle", "queued"}
    assert after.value("alloy_upstream_connections", provider="openai", state="open") >= after.value(
        "alloy_upstream_connections", provider="openai", state="idle"
    )
    assert after.value("alloy_upstream_connections", provider="openai", state="queued") == 0
    breaker = {"model": "fast", "provider": "openai", "deployment": "gpt-4o-mini"}
    assert after.value("alloy_breaker_state", **breaker, state="healthy") == 1
    assert after.value("alloy_breaker_state", **breaker, state="cooling") == 0
    assert after.value("alloy_workers") == 1
    assert after.label_values("alloy_build_info", "core") <= {"compiled", "pure"}
    for name, kind in (("alloy_requests_total", "counter"), ("alloy_requests_in_flight", "gauge"), ("alloy_tokens_total", "counter")):
        assert after.families[name][0] == kind
    assert_no_crash_logged(gateway)


def test_scrapes_are_not_counted_and_head_is_answered(start_gateway, mock):
    gateway = start(start_gateway, mock)
    first = scrape(gateway.base)
    second = scrape(gateway.base)
    assert first.total("alloy_requests_total") == second.total("alloy_requests_total") == 0
    host, port = gateway.base.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    connection.request("HEAD", "/metrics")
    response = connection.getresponse()
    assert response.status == 200 and response.read() == b""
    connection.request("POST", "/metrics", b"")
    response = connection.getresponse()
    assert response.status == 405 and "GET" in response.getheader("allow")
    response.read()


def test_metrics_need_the_master_key_unless_public(start_gateway, mock):
    guarded = start(start_gateway, mock, env={"ALLOY_MASTER_KEY": "team-key"})
    status, _, body = fetch(guarded.base)
    assert status == 401 and json.loads(body)["error"]["type"] == "invalid_request_error"
    assert fetch(guarded.base, key="wrong")[0] == 401
    assert scrape(guarded.base, key="team-key").value("alloy_workers") == 1
    # A refused request is counted too (before any call exists: no model, no provider).
    assert post(guarded, chat("fast"))[0] == 401
    counted = scrape(guarded.base, key="team-key")
    assert counted.value(
        "alloy_requests_total", endpoint="chat/completions", model="", provider="", status_class="4xx"
    ) == 1
    assert counted.value("alloy_errors_total", type="invalid_request_error", code="invalid_api_key") == 1

    public = start(start_gateway, mock, extra="[metrics]\npublic = true\n", env={"ALLOY_MASTER_KEY": "team-key"})
    assert scrape(public.base).value("alloy_workers") == 1
    assert post(public, chat("fast"))[0] == 401  # public metrics, still a guarded API


def test_a_separate_metrics_port_serves_metrics_and_only_metrics(start_gateway, mock):
    gateway = start(start_gateway, mock, extra="[metrics]\nport = 0\n")
    assert wait_until(lambda: "metrics served at" in gateway.stderr, 5), gateway.stderr
    metrics_base = re.search(r"metrics served at (http://[\d.]+:\d+)/metrics", gateway.stderr).group(1)
    assert metrics_base != gateway.base
    assert fetch(gateway.base)[0] == 404  # not on the main port
    assert post(gateway, chat("fast"))[0] == 200
    assert scrape(metrics_base).value(
        "alloy_requests_total", endpoint="chat/completions", model="fast", provider="openai", status_class="2xx"
    ) == 1
    assert fetch(metrics_base, path="/v1/models")[0] == 404  # the metrics listener serves nothing else
    assert fetch(metrics_base, path="/health")[0] == 404


def test_model_names_beyond_the_configured_set_fold_into_other(start_gateway, mock):
    # A plain proxy (no [[models]]): every name reaches the upstream; only m-7 is named as a label.
    gateway = start_gateway(
        config=f'[metrics]\nmodels = ["m-7"]\n\n[providers.openai]\nbase_url = "{mock.base}/v1"\napi_key = "env:K"\n',
        env={"K": KEY},
    )
    for i in range(40):
        assert post(gateway, chat(f"m-{i}"))[0] == 200
    after = scrape(gateway.base)
    assert after.label_values("alloy_requests_total", "model") == {"m-7", "other"}
    assert after.value("alloy_requests_total", endpoint="chat/completions", model="other", provider="openai", status_class="2xx") == 39
    assert after.value("alloy_requests_total", endpoint="chat/completions", model="m-7", provider="openai", status_class="2xx") == 1
    assert after.label_values("alloy_tokens_total", "model") == {"m-7", "other"}
    assert len(after.series("alloy_request_duration_seconds_count")) == 2
    # Paths are bounded the same way: passthrough paths by the allow-list rule that let them through.
    for i in range(5):
        host, port = gateway.base.removeprefix("http://").split(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=10)
        connection.request("GET", f"/v1/files/file-{i}")
        connection.getresponse().read()
        connection.close()
    endpoints = scrape(gateway.base).label_values("alloy_requests_total", "endpoint")
    assert endpoints == {"chat/completions", "files/*"}


def test_in_flight_requests_connections_and_deployments_are_read_at_scrape_time(start_gateway, mock):
    gateway = start(start_gateway, mock)
    done = threading.Event()

    def slow():
        post(gateway, chat("fast"), headers={"x-mock-fault": "slow-first-byte=1500"})
        done.set()

    threading.Thread(target=slow, daemon=True).start()
    assert wait_until(lambda: scrape(gateway.base).value("alloy_requests_in_flight") == 1, 5)
    during = scrape(gateway.base)
    assert during.value("alloy_client_connections") >= 2  # the slow request's and the scrape's
    assert during.value("alloy_deployment_in_flight", model="fast", provider="openai", deployment="gpt-4o-mini") == 1
    assert during.value("alloy_upstream_connections", provider="openai", state="open") >= 1
    assert done.wait(10)
    after = scrape(gateway.base)
    assert after.value("alloy_requests_in_flight") == 0
    assert after.value("alloy_deployment_in_flight", model="fast", provider="openai", deployment="gpt-4o-mini") == 0
    assert after.value("alloy_upstream_connections", provider="openai", state="idle") >= 1


PAIR = """
[[models]]
name = "pair"
strategy = "round-robin"
deployments = [{ provider = "openai", model = "gpt-4o-mini" }, { provider = "openai", model = "gpt-4o" }]
"""


def test_a_breaker_that_opens_shows_in_its_gauge_and_in_the_log(start_gateway, mock):
    gateway = start(start_gateway, mock, router="failure_threshold = 2\ncooldown = 60", extra=PAIR)
    # Two requests of two attempts, one on each deployment: two failures each, both breakers
    # open; the upstream's last 500 is the answer.
    for _ in range(2):
        assert post(gateway, chat("pair"), headers={"x-mock-fault": "status=500"})[0] == 500
    after = scrape(gateway.base)
    for deployment in ("gpt-4o-mini", "gpt-4o"):
        breaker = {"model": "pair", "provider": "openai", "deployment": deployment}
        assert after.value("alloy_breaker_state", **breaker, state="cooling") == 1
        assert after.value("alloy_breaker_state", **breaker, state="healthy") == 0
    assert post(gateway, chat("pair"))[0] == 503  # no healthy deployment: Alloy's own answer
    assert scrape(gateway.base).value("alloy_errors_total", type="server_error", code="no_healthy_deployment") == 1
    # A gateway event at WARNING (the default --log-level): seen within the next second's check.
    assert wait_until(lambda: "breaker opened" in gateway.stderr, 5), gateway.stderr


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="--workers is Linux-only")
def test_with_two_workers_every_scrape_reports_the_whole_server(start_gateway, mock):
    gateway = start(start_gateway, mock, args=["--workers", "2"])
    for _ in range(24):  # each on a new connection: the kernel spreads them over both workers
        assert post(gateway, chat("fast"))[0] == 200
    time.sleep(1.5)  # each worker shares its counters once a second

    def served():
        return scrape(gateway.base).value(
            "alloy_requests_total", endpoint="chat/completions", model="fast", provider="openai", status_class="2xx"
        )

    seen = [served() for _ in range(8)]  # new connections: both workers answer some of these
    assert seen == [24] * 8
    last = scrape(gateway.base)
    assert last.value("alloy_workers") == 2
    assert last.value("alloy_request_duration_seconds_count", endpoint="chat/completions", model="fast", provider="openai") == 24
    assert last.value("alloy_breaker_state", model="fast", provider="openai", deployment="gpt-4o-mini", state="healthy") == 2
    # Counters never go down between scrapes, whichever worker answers; another worker's latest
    # requests may show up to a second late (it shares its counters once a second).
    previous = 24
    for made in range(25, 31):
        assert post(gateway, chat("fast"))[0] == 200
        now = served()
        assert previous <= now <= made
        previous = now
    assert wait_until(lambda: served() == 30, 5)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="--workers is Linux-only")
def test_workers_that_die_leave_their_counts_and_one_file_for_them_all(start_gateway, mock):
    # Each dead worker's last snapshot was kept for good (its counts must not go down), one file
    # per death: a crash-looping worker (replaced every 10 s at most) left thousands a day in
    # /dev/shm, every one read by every scrape. The supervisor now folds each into one file.
    import glob
    import os
    import signal

    from test_workers import alive, workers_of

    gateway = start(start_gateway, mock, args=["--workers", "2"])
    [directory] = glob.glob(f"/dev/shm/alloy-metrics-{gateway.pid}-*")
    made = 0
    for _ in range(3):
        for _ in range(8):
            assert post(gateway, chat("fast"))[0] == 200
            made += 1
        time.sleep(1.2)  # every worker has shared its counts since
        victim, survivor = workers_of(gateway.pid)
        os.kill(victim, signal.SIGKILL)
        assert wait_until(lambda: not alive(victim) and len(workers_of(gateway.pid)) == 2, 15), gateway.stderr
        replacement = next(pid for pid in workers_of(gateway.pid) if pid != survivor)
        assert wait_until(lambda: f"worker {replacement} ready" in gateway.stderr, 10), gateway.stderr

    def served():
        return scrape(gateway.base).value(
            "alloy_requests_total", endpoint="chat/completions", model="fast", provider="openai", status_class="2xx"
        )

    assert wait_until(lambda: served() == made, 5), served()
    assert [served() for _ in range(6)] == [made] * 6  # whichever worker answers
    snapshots = sorted(name for name in os.listdir(directory) if name.endswith(".metrics"))
    living = {f"{pid}.metrics" for pid in workers_of(gateway.pid)}
    assert set(snapshots) - living == {"retired.metrics"}, snapshots


def test_metrics_can_be_switched_off(start_gateway, mock):
    gateway = start(start_gateway, mock, extra="[metrics]\nenabled = false\n")
    assert post(gateway, chat("fast"))[0] == 200
    assert fetch(gateway.base)[0] == 404


def test_the_exposition_parses_with_escaped_label_values():
    """Label values are escaped (a configured model name may hold a quote or a backslash)."""
    from alloy.observability.exposition import Exposition

    out = Exposition()
    out.metric("x_total", "counter", 'help with \\ and\nnewline', ("model",), {('a"b\\c\nd',): 3})
    parsed = parse(out.text().decode())
    assert parsed.value("x_total", model='a"b\\c\nd') == 3
