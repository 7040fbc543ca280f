"""The account stage's cost per call: the metrics and access-log finish listeners
(``alloy.observability``), the usage read they share, and the access log's formatting of a line.

A real ``Call`` (alloy.call) is built as the pipeline would leave it at ``finish``: a chat request
routed to a configured model on one deployment, answered 200 by its first attempt, with the answer's
last body piece (an OpenAI completion with its ``usage``) as its tail. The body scan comes from the
twin named by ``impl``; the usage is read once before timing (``call.usage`` caches it on the call, so
each listener pays for the read only if it is the first to ask: its cost is the separate "usage
read" group, once per call whichever listener asks).

- ``metrics listener``: ``Metrics.record``: label lookups, a slot, the twin's ``SlotObserver``
  (histogram buckets by bisection, attempts), tokens;
- ``access log listener``: ``AccessLog.record``: the line's values copied into a tuple and appended
  (the timed function also empties the list again: one ``list.clear`` of one item, ~20 ns);
- ``usage read``: the core's ``find_usage`` on the answer's last piece (``call.usage``);
- ``access log line``: what the once-a-second flush spends on one line (the core's JSON line), off
  the request path.
"""

import time

import pytest

from alloy.balancer import Deployment, ModelGroup
from alloy.call import Call
from alloy.config import LogSettings, MetricsSettings
from alloy.observability.access_log import AccessLog
from alloy.observability.metrics import ATTEMPTS, LATENCY_BOUNDS, OVERHEAD_BOUNDS, PROMPT, SLOT_LAYOUT, TOTAL, Metrics

BODY = b'{"model":"fast","messages":[{"role":"user","content":"hello there"}]}'
ANSWER = (
    b'{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o-mini","choices":[{"index":0,'
    b'"message":{"role":"assistant","content":"echo: hello there"},"finish_reason":"stop"}],'
    b'"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}'
)


class Provider:
    name = "openai"
    name_bytes = b"openai"


class Request:
    method = b"POST"
    body = body_buffer = BODY
    headers = {}
    keep_alive = True


class Transport:
    def get_extra_info(self, name, default=None):
        return ("127.0.0.1", 51515)


class Connection:
    transport = Transport()
    current = None


class Gateway:  # what the metrics read at scrape time: nothing here
    pass


class Pipeline:  # what a Call reads of its pipeline when made: no CORS configured
    cors = None


def finished_call(core):
    deployment = Deployment(Provider(), "gpt-4o-mini", 1.0, 0, None, None)
    group = ModelGroup("fast", [deployment], "weighted", 2)
    call = Call(Pipeline(), Request(), Connection(), b"/v1/chat/completions", b"", b"x-request-id: 1a2b-1\r\n", group,
                core.scan_body(BODY), "fast")  # fmt: skip
    now = time.monotonic()
    call.arrived, call.sent_at, call.head_at, call.ended_at = now, now + 0.00002, now + 0.0004, now + 0.00043
    call.deployment, call.count, call.status, call.tail, call.ended = deployment, 1, 200, (ANSWER,), True
    return call


class Writer:
    dropped = 0

    def submit(self, block, lines):
        pass


@pytest.mark.parametrize("impl", ["compiled", "pure"], indirect=True)
def test_metrics_listener(benchmark, record, impl):
    call = finished_call(impl)
    call.usage  # read once, as the first listener to ask would
    metrics = Metrics(Gateway(), MetricsSettings(), ["fast"], [])
    metrics.observer = impl.SlotObserver(LATENCY_BOUNDS, OVERHEAD_BOUNDS, SLOT_LAYOUT)  # this twin's
    metrics.record(call)
    slot = metrics.slots[("chat/completions", "fast", "openai")]
    record("finish listener: metrics", slot[2] == 1 and slot[ATTEMPTS] == 1 and slot[PROMPT] == 3 and sum(slot[TOTAL:TOTAL + 22]) == 1)
    benchmark(metrics.record, call)


@pytest.mark.parametrize("impl", ["compiled", "pure"], indirect=True)
def test_access_log_listener(benchmark, record, impl):
    call = finished_call(impl)
    call.usage
    log = AccessLog(LogSettings(), Writer())
    log.record(call)
    entry = log.entries.pop()
    record("finish listener: access log", entry[6] == "fast" and entry[10] == 200 and entry[17] == (3, 4))
    entries = log.entries

    def once():
        log.record(call)
        entries.clear()

    benchmark(once)


@pytest.mark.parametrize("impl", ["compiled", "pure"], indirect=True)
def test_usage_read(benchmark, record, impl):
    record("finish listener: usage read (once per call)", impl.find_usage(ANSWER)["completion_tokens"] == 4)
    benchmark(impl.find_usage, ANSWER)


@pytest.mark.parametrize("impl", ["compiled", "pure"], indirect=True)
def test_access_log_line(benchmark, record, impl):
    from alloy import _pycore

    call = finished_call(impl)
    call.usage
    log = AccessLog(LogSettings(), Writer())
    log.record(call)
    entry = log.entries.pop()
    offset = time.time() - time.monotonic()
    line = impl.access_json_line(entry, offset)
    record("access log: one JSON line (at flush)", line == _pycore.access_json_line(entry, offset) and b'"served_model":"gpt-4o-mini"' in line)
    benchmark(impl.access_json_line, entry, offset)
