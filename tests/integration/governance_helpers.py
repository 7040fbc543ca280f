"""What the governance tests share: ``alloy keys|teams|usage`` run as a person runs them (a real
process, JSON read from its stdout), the configuration of a keyed gateway in front of the mock, and
plain HTTP calls for concurrent load (the openai SDK is used where one client's view is checked).
Every database lives in the test's tmp_path: the gateway's working directory in tests is /.
"""

import http.client
import json
import sqlite3
import subprocess
import sys
import time

from harness import RUN_DIR, gateway_env, in_parallel, wait_until

MASTER = "sk-master-test"


def alloy(db, *args, expect=0):
    """``alloy ARGS --db DB``: its JSON output (or the completed process when ``expect`` is not 0)."""
    done = _run_alloy(db, args)
    assert done.returncode == expect, done.stderr
    return json.loads(done.stdout) if expect == 0 else done


def alloy_text(db, *args):
    """``alloy ARGS --db DB`` as a person reads it: its standard output, after a clean exit."""
    done = _run_alloy(db, args)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _run_alloy(db, args):
    return subprocess.run(
        [sys.executable, "-m", "alloy", *args, "--db", str(db)],
        capture_output=True, text=True, cwd=RUN_DIR, env=gateway_env(), timeout=30,
    )  # fmt: skip


def create_key(db, name, *options):
    """A new key: (its row, its secret)."""
    row = alloy(db, "keys", "create", "--name", name, *options)
    return row, row["key"]


def key_created_at(db, name):
    """When the key was created, to the microsecond (the CLI shows whole seconds): the anchor its
    budget periods are counted from."""
    with sqlite3.connect(db) as database:
        [(created,)] = database.execute("SELECT created_at FROM keys WHERE name = ?", (name,)).fetchall()
    return created


PICKUP_BOUND = 3.0  # seconds: a database created while a keyless gateway serves applies by then
#                     (documented: sync_interval, 0.5 s, + opening the file)


def unkeyed_config(mock):
    """A provider and no [governance]: keys apply only once a database appears."""
    return f"""
        [providers.openai]
        base_url = "{mock.base}/v1"
        api_key = "sk-provider"
        """


def keyed_config(mock, db, extra=""):
    return f"""
        [providers.openai]
        base_url = "{mock.base}/v1"
        api_key = "sk-provider"

        [governance]
        path = "{db}"
        sync_interval = 0.1
        flush_interval = 0.1
        {extra}
        """


def post(port, key, body, path="/v1/chat/completions", headers=None):
    """One request on its own connection: (status, headers as a lower-cased dict, JSON body)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        sent = {"content-type": "application/json", **(headers or {})}
        if key is not None:
            sent["authorization"] = f"Bearer {key}"
        connection.request("POST", path, json.dumps(body), sent)
        response = connection.getresponse()
        data = response.read()
        head = {name.lower(): value for name, value in response.getheaders()}
        return response.status, head, json.loads(data) if data.startswith(b"{") else data
    finally:
        connection.close()


def admin(port, method, path, body=None, key=MASTER):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        headers = {"authorization": f"Bearer {key}"}
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body)
            headers["content-type"] = "application/json"
        connection.request(method, path, data, headers)
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def chat(model="gpt-4o", text="count these words", **extra):
    return {"model": model, "messages": [{"role": "user", "content": text}], **extra}


def burst(port, key, count, body=None, headers=None):
    """``count`` requests at once, each on its own connection: their (status, headers, body)."""
    body = body or chat()
    return in_parallel([lambda: post(port, key, body, headers=headers)] * count)


def statuses(results):
    return sorted(status for status, _, _ in results)


def usage_rows(db, by="key", **filters):
    args = ["usage", "--by", by, "--json"]
    for name, value in filters.items():
        args += [f"--{name}", value]
    return alloy(db, *args)


def ledger_cost(db):
    """USD the ledger holds for the only key so far: 0.0 before the writer's first flush, so a
    test can poll it without tripping over an empty ledger."""
    rows = usage_rows(db)
    return rows[0]["cost_usd"] if rows else 0.0


def shorten_spent_period_to_three_seconds(gateway, db, secret, name, created):
    """After ``name``'s budget was spent 3 to 6 s after its creation (``created``): its
    budget_period becomes 3 s, and the next request, still in the period that holds the spend,
    is refused for its budget (period numbers of two lengths do not compare)."""
    assert wait_until(lambda: ledger_cost(db) >= 1.5, timeout=1)
    alloy(db, "keys", "update", name, "--budget-period", "3s")
    time.sleep(0.3)  # sync_interval 0.1 s: the gateway has the new period
    assert time.time() < created + 6  # still the period that holds the spend
    status, _, body = post(gateway.port, secret, chat(text="one two three"))
    assert status == 429 and body["error"]["code"] == "insufficient_quota"
