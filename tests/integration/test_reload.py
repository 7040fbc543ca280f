"""Hot reload through the running gateway: SIGHUP and ``POST /admin/reload`` swap a new configuration
in; a broken one changes nothing; requests in flight and under load never fail; breaker state of an
unchanged deployment survives.

Two strict mocks play two providers, ``a`` and ``b``; the model ``fast`` routes to one or the other
depending on the configuration in force, and ``x-alloy-provider`` on each answer says which served
it. The gateway reads its file from ``--config``, which the tests rewrite before each reload.
"""

import json
import os
import signal
import threading
import time
import urllib.error
import urllib.request

import pytest

from harness import start_gateway_process, wait_until
from metrics_helpers import scrape

MASTER = "sk-master-reload"


def config_text(mock_a, mock_b, fast_on="a", extra="", first_byte_timeout=30, master=MASTER, server=""):
    return f"""
[server]
master_key = "{master}"
{server}

[router]
failure_threshold = 2
cooldown = 60
max_retries = 0

[providers.a]
base_url = "{mock_a.base}/v1"
api_key = "sk-provider"
first_byte_timeout = {first_byte_timeout}

[providers.b]
base_url = "{mock_b.base}/v1"
api_key = "sk-provider"

[[models]]
name = "fast"
deployments = [{{ provider = "{fast_on}", model = "gpt-4o-mini" }}]

[[models]]
name = "steady"
deployments = [{{ provider = "a", model = "gpt-4o-mini" }}]
fallbacks = ["fast"]  # somewhere else to go: its deployment may cool
{extra}
"""


@pytest.fixture
def mocks(start_mock):
    return start_mock("--api-key", "sk-provider"), start_mock("--api-key", "sk-provider")


@pytest.fixture
def reloadable(tmp_path, mocks):
    """(gateway, write): a gateway on a config file, and a function rewriting that file."""
    path = tmp_path / "alloy.toml"
    mock_a, mock_b = mocks

    def write(**kwargs):
        path.write_text(config_text(mock_a, mock_b, **kwargs))

    write()
    gateway = start_gateway_process(tmp_path / "unused.toml", None, None, ["--config", str(path), "--log-level", "INFO"])
    yield gateway, write
    gateway.stop()


def chat(gateway, model="fast", headers=None, timeout=10):
    """(status, the provider that served it, body) for one chat request with the master key."""
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": "hi"}]}).encode()
    request = urllib.request.Request(
        gateway.base + "/v1/chat/completions",
        data=body,
        headers={"Authorization": f"Bearer {MASTER}", "Content-Type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.headers.get("x-alloy-provider"), json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("x-alloy-provider"), json.load(error)


def admin_reload(gateway, key=MASTER):
    request = urllib.request.Request(
        gateway.base + "/admin/reload", data=b"", method="POST", headers={"Authorization": f"Bearer {key}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def readiness(gateway):
    request = urllib.request.Request(gateway.base + "/health/ready", headers={"Authorization": f"Bearer {MASTER}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)
    except urllib.error.HTTPError as error:
        return json.load(error)


def test_sighup_swaps_in_new_routes_and_models(reloadable):
    gateway, write = reloadable
    assert chat(gateway)[:2] == (200, "a")
    assert chat(gateway, "added")[0] == 404
    write(fast_on="b", extra='\n[[models]]\nname = "added"\ndeployments = [{ provider = "b" , model = "gpt-4o-mini" }]\n')
    gateway.signal(signal.SIGHUP)
    assert wait_until(lambda: chat(gateway)[1] == "b", 5), gateway.stderr
    assert chat(gateway, "added")[:2] == (200, "b")
    assert chat(gateway, "steady")[:2] == (200, "a")
    # A model added by the reload has metrics of its own (it was once counted as "other").
    metrics = scrape(gateway.base, key=MASTER)
    assert metrics.total("alloy_requests_total", model="added") == 1
    assert metrics.total("alloy_requests_total", model="other") == 0
    # The gateway logs it right after the swap; the test reads stderr on a thread of its own.
    assert wait_until(lambda: "configuration reloaded" in gateway.stderr, 5), gateway.stderr
    assert gateway.popen.poll() is None


def metrics_status(gateway, key):
    request = urllib.request.Request(gateway.base + "/metrics", headers={"Authorization": f"Bearer {key}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_a_new_master_key_guards_the_metrics_at_once(reloadable):
    # The key is rotated because it leaked: the old one must stop reading /metrics with the rest.
    gateway, write = reloadable
    assert metrics_status(gateway, MASTER) == 200
    write(master="sk-master-rotated")
    gateway.signal(signal.SIGHUP)
    assert wait_until(lambda: "configuration reloaded" in gateway.stderr, 5), gateway.stderr
    assert metrics_status(gateway, MASTER) == 401
    assert metrics_status(gateway, "sk-master-rotated") == 200


def test_a_passthrough_rule_added_by_a_reload_labels_its_metrics(reloadable):
    gateway, write = reloadable

    def fine_tuning_jobs():
        request = urllib.request.Request(gateway.base + "/v1/fine_tuning/jobs", headers={"Authorization": f"Bearer {MASTER}"})
        try:
            urllib.request.urlopen(request, timeout=10).close()
        except urllib.error.HTTPError as error:
            error.close()

    write(extra='\n[passthrough]\nallow = ["GET /v1/fine_tuning/jobs"]\n')
    gateway.signal(signal.SIGHUP)
    assert wait_until(lambda: "configuration reloaded" in gateway.stderr, 5), gateway.stderr
    fine_tuning_jobs()  # proxied now, and counted under its rule, as after a start with that list
    metrics = scrape(gateway.base, key=MASTER)
    assert metrics.total("alloy_requests_total", endpoint="fine_tuning/jobs") == 1
    assert metrics.total("alloy_requests_total", endpoint="other") == 0


def test_a_broken_configuration_changes_nothing(reloadable, tmp_path):
    gateway, write = reloadable
    path = tmp_path / "alloy.toml"
    good = path.read_text()
    path.write_text(good.replace("cooldown = 60", "cooldown = 60\ncooldwn = 5"))  # a typo: unknown key
    gateway.signal(signal.SIGHUP)
    assert wait_until(lambda: "refused" in gateway.stderr, 20), gateway.stderr
    assert "cooldwn" in gateway.stderr and "sk-provider" not in gateway.stderr
    assert chat(gateway)[:2] == (200, "a")
    status, body = admin_reload(gateway)
    assert status == 400
    assert "cooldwn" in body["error"]["message"] and "keeps serving" in body["error"]["message"]
    path.write_text("this is [not toml")
    assert admin_reload(gateway)[0] == 400
    assert chat(gateway)[:2] == (200, "a")


def test_admin_reload_needs_the_master_key_and_says_what_it_did(reloadable):
    gateway, write = reloadable
    assert admin_reload(gateway, key="sk-wrong")[0] == 401
    write(fast_on="b")
    status, body = admin_reload(gateway)
    assert status == 200 and body["status"] == "reloaded" and body["reloads"] == 1
    assert chat(gateway)[1] == "b"
    write(fast_on="b", extra='\n[metrics]\npublic = true\n')
    status, body = admin_reload(gateway)
    assert status == 200 and body["restart_needed_for"] == ["metrics"]
    assert "[metrics] take effect at the next start" in body["message"]


def test_breaker_state_of_an_unchanged_deployment_survives_a_reload(reloadable):
    gateway, write = reloadable
    for _ in range(2):  # failure_threshold = 2: the deployment of "steady" cools down
        assert chat(gateway, "steady", {"x-mock-fault": "status=500"})[0] == 500
    states = lambda: {d["provider"]: d["state"] for d in readiness(gateway)["models"]["steady"]["deployments"]}  # noqa: E731
    assert states() == {"a": "cooling"}
    write(fast_on="b")  # "steady" itself is unchanged
    assert admin_reload(gateway)[0] == 200
    assert states() == {"a": "cooling"}
    # still cooling: nothing sent to it, as before the reload; its fallback (now on b) serves
    assert chat(gateway, "steady")[:2] == (200, "b")


def test_twenty_reloads_under_load_fail_no_request(reloadable):
    gateway, write = reloadable
    stop = threading.Event()
    outcomes, lock = [], threading.Lock()

    def client():
        while not stop.is_set():
            status, provider, _ = chat(gateway)
            with lock:
                outcomes.append((status, provider))

    threads = [threading.Thread(target=client) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        for i in range(20):
            write(fast_on="ab"[i % 2 == 0], first_byte_timeout=20 + i)
            assert admin_reload(gateway)[0] == 200
            time.sleep(0.05)
    finally:
        stop.set()
        for thread in threads:
            thread.join(15)
    assert len(outcomes) > 40
    assert all(status == 200 for status, _ in outcomes), [o for o in outcomes if o[0] != 200][:5]
    assert {provider for _, provider in outcomes} == {"a", "b"}
    assert chat(gateway)[1] == "a"  # the last reload (i = 19) routed "fast" to a


@pytest.fixture
def workers(tmp_path, mocks):
    """(gateway, write): ``alloy --workers 2`` on a config file, and a function rewriting it."""
    path = tmp_path / "alloy.toml"
    mock_a, mock_b = mocks

    def write(**kwargs):
        path.write_text(config_text(mock_a, mock_b, **kwargs))

    write()
    gateway = start_gateway_process(tmp_path / "unused.toml", None, None, ["--config", str(path), "--workers", "2"])
    yield gateway, write
    gateway.stop()


def worker_pids(gateway):
    # Said just after the "listening" line the start waited for: it may not have been read yet.
    assert wait_until(lambda: "worker pids " in gateway.stderr, 5), gateway.stderr
    return [int(pid) for pid in gateway.stderr.split("worker pids ")[1].split("\n")[0].split()]


def test_sighup_to_the_supervisor_reloads_every_worker(workers):
    gateway, write = workers
    assert {chat(gateway)[1] for _ in range(10)} == {"a"}
    write(fast_on="b")
    gateway.signal(signal.SIGHUP)
    # New connections land on either worker: once ten in a row say "b", both have reloaded.
    assert wait_until(lambda: {chat(gateway)[1] for _ in range(10)} == {"b"}, 10), gateway.stderr
    assert gateway.popen.poll() is None
    # Only the routes changed: no worker says a section waits for a restart (the [metrics]
    # section the supervisor completed is the file's, as far as a reload is concerned).
    assert "take effect at the next start" not in gateway.stderr


def test_admin_reload_with_workers_reloads_every_worker_and_the_ones_started_later(workers):
    # POST /admin/reload reaches one worker: it once reloaded that worker alone, and a replacement
    # of a worker that died started with the old configuration.
    gateway, write = workers
    assert {chat(gateway)[1] for _ in range(10)} == {"a"}
    write(fast_on="b")
    status, body = admin_reload(gateway)
    assert status == 200 and body["workers"].startswith("all"), body
    assert wait_until(lambda: {chat(gateway)[1] for _ in range(20)} == {"b"}, 10), gateway.stderr
    os.kill(worker_pids(gateway)[0], signal.SIGKILL)  # its replacement starts from the supervisor's configuration
    assert wait_until(lambda: gateway.stderr.count(" ready") >= 1, 10), gateway.stderr
    assert {chat(gateway)[1] for _ in range(20)} == {"b"}


def test_a_sighup_while_a_worker_starts_does_not_end_it(workers):
    # Between its fork and its loop's handler a worker had SIGHUP's default action (terminate): a
    # reload then killed it, and at start the whole server stopped.
    gateway, write = workers
    write(fast_on="b")
    os.kill(worker_pids(gateway)[0], signal.SIGKILL)
    for _ in range(40):  # SIGHUPs through the replacement's start
        gateway.signal(signal.SIGHUP)
        time.sleep(0.025)
    assert wait_until(lambda: {chat(gateway)[1] for _ in range(20)} == {"b"}, 10), gateway.stderr
    assert "killed by SIGHUP" not in gateway.stderr and gateway.popen.poll() is None


def test_a_reload_that_moves_the_listening_address_says_it_waits_for_a_restart(reloadable):
    # The file's [server] port changed: the gateway cannot move its listening socket under open
    # connections, and said nothing, so the operator believed it listened on the new port.
    gateway, write = reloadable
    write(server="port = 1")
    status, body = admin_reload(gateway)
    assert status == 200 and body["restart_needed_for"] == ["server.port"]
    assert "[server] port take effect at the next start" in body["message"]
    assert wait_until(lambda: "[server] port take effect at the next start" in gateway.stderr, 5)
    assert chat(gateway)[0] == 200  # still where it was, and the rest of the file applied
    status, body = admin_reload(gateway)  # unchanged since: nothing to say (the port given on the
    assert status == 200 and "restart_needed_for" not in body  # command line is not the file's)
