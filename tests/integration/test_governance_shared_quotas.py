"""A deployment's provider quota (``rpm``/``tpm`` on a ``[[models]]`` deployment) holds for the whole
server with ``--workers 2``: counted in the counters table the workers share, not once per worker.
Requests racing at the moment the quota runs out may pass one per other worker (documented); the
upstream mock's log counts what was really sent."""

from governance_helpers import burst, chat, post, statuses
from harness import in_parallel

MODELS = """
[[models]]
name = "fast"
deployments = [{ provider = "a", model = "gpt-4o-mini", %s }]
"""


def start_workers(start_gateway, mock, quota):
    config = (
        f'[providers.a]\nkind = "openai"\nbase_url = "{mock.base}/v1"\napi_key = "sk-provider"\n\n'
        "[router]\nmax_retries = 0\n" + MODELS % quota
    )
    return start_gateway(config=config, args=["--workers", "2"])


def test_a_deployments_rpm_holds_across_workers(start_gateway, upstream):
    gateway = start_workers(start_gateway, upstream, "rpm = 6")
    upstream.clear()
    results = burst(gateway.port, None, 16, body=chat("fast"))
    passed = statuses(results).count(200)
    assert 6 <= passed <= 7, statuses(results)  # one per worker would let up to 12 through
    assert len(upstream.requests()) == passed
    refused = [body for status, _, body in results if status == 429]
    assert refused and all(body["error"]["code"] == "rate_limit_exceeded" for body in refused)
    # The minute is used up in every worker: nothing more goes upstream, whichever worker answers.
    assert statuses(in_parallel([lambda: post(gateway.port, None, chat("fast"))] * 8)) == [429] * 8
    assert len(upstream.requests()) == passed


def test_a_deployments_tpm_counts_answers_from_every_worker(start_gateway, upstream):
    gateway = start_workers(start_gateway, upstream, "tpm = 40")
    upstream.clear()
    used = []  # each answer's total tokens
    for _ in range(20):  # one at a time: each answer's usage is counted before the next is decided
        status, _, body = post(gateway.port, None, chat("fast"))
        if status != 200:
            break
        used.append(body["usage"]["total_tokens"])
    # Refused once the server's count reached the quota (per worker, it would go on to about twice
    # as many tokens). An answer is counted as its call ends, just after the client has it: the
    # next request, answered by the other worker, may be decided a moment before, so one more.
    assert status == 429 and body["error"]["code"] == "rate_limit_exceeded"
    assert sum(used[:-2]) < 40 <= sum(used), used
    assert len(upstream.requests()) == len(used)
