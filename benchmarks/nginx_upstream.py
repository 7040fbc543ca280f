"""The fast upstream: nginx answering ``POST /v1/chat/completions`` with fixed bodies.

``alloy mock-upstream`` validates and echoes every request in Python, which costs more per request
than the gateway being measured and caps a proxied run at what it can serve. This upstream does
no work per request beyond nginx's own: it picks one of three prepared answers and sends it.

- **The answers** are made by the mock's own reply code (``alloy.mock_replies.chat_completion``), so
  they have the mock's shape and fields: the answer to the ~300 B chat request; the answer to the
  ~200 KB request made without its ``max_tokens`` (the echo's own cap, ``ECHO_WORDS`` words: a
  summary-sized answer instead of a 16-word one); and for the stream request (the ~300 B request
  with ``"stream": true`` and ``stream_options.include_usage``) the mock's
  ``chat.completion.chunk`` events, usage chunk and ``data: [DONE]``.
- **Which answer**: the three requests have different lengths, so a ``map`` on
  ``$content_length`` picks the file; the same body reaches the upstream with the same length
  through the blind relay, nginx and Alloy. ``latency_bench`` checks before measuring that each
  gateway gets the right answer back (``check_routes``).
- **POST to a static file**: nginx's static module answers POST with 405. The usual trick is
  ``error_page 405 =200 <uri>``: the 405 becomes an internal redirect to the file, as GET, answered
  with 200. Here the location says ``return 405`` itself, so the file is opened once (by the
  redirect), not twice; nginx reads and discards the request body, as it must to keep the
  connection.
- **The stream** is served like OpenAI's: ``text/event-stream; charset=utf-8``, chunked transfer
  encoding, one chunk per event. A static file has a length, so nginx would send it with a
  Content-Length as one block; with ``ssi on`` for ``text/event-stream`` only, nginx drops the
  length and frames the body as chunks, and an ``<!--# include virtual=... -->`` of an empty
  internal location between events makes each event its own chunk (an SSI include flushes what is
  before it; the include adds no bytes). The events are all ready at once (zero generation time,
  like the mock), so they leave in nginx's usual writes of a few events each.
- **Realistic response headers** (``realistic_headers.OPENAI_RESPONSE_HEADERS``) are added with
  ``add_header`` whose value comes from a ``map`` on the SDK's ``x-stainless-lang`` request header:
  empty (so not sent) for the minimal client, the header for the SDK's head. One upstream serves
  both variants, and every gateway forwards that request header as it is.
- No ETag, Last-Modified or Accept-Ranges (OpenAI sends none); ``Server: nginx`` stays (nginx
  cannot rename itself without a third-party module).
"""

import json
import os
import sys

from realistic_headers import MARKER, OPENAI_RESPONSE_HEADERS

FILES = {"small": "chat-small.json", "big": "chat-big.json", "stream": "chat-stream.sse"}
FLUSH = b'<!--# include virtual="/_flush" -->'

CONF = """\
# the fast upstream of latency_bench (benchmarks/nginx_upstream.py says how and why)
worker_processes {workers};
daemon off;
master_process on;
pid {dir}/nginx.pid;
error_log {dir}/nginx-error.log warn;
events {{ worker_connections 8192; multi_accept on; }}
http {{
    access_log off;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    keepalive_requests 10000000;
    keepalive_timeout 120s;
    client_max_body_size 64m;
    tcp_nodelay on;
    sendfile off;               # head and a small body in one write
    open_file_cache max=16;
    open_file_cache_valid 1h;
    etag off;
    server_tokens off;
    types {{ application/json json; text/event-stream sse; }}
    charset_types text/event-stream;

    map $content_length $alloy_bench_reply {{
{routes}
        default {big};
    }}
{header_maps}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location = /v1/chat/completions {{
            # the static module refuses POST (405): error_page turns the 405 into an internal
            # redirect, as GET, to the answer file, sent with status 200
            error_page 405 =200 /_replies/$alloy_bench_reply;
            return 405;
        }}
        location = /_flush {{ internal; return 200 ""; }}
        location /_replies/ {{
            internal;
            alias {dir}/replies/;
            max_ranges 0;
            add_header Last-Modified "";
            ssi on;                      # text/event-stream only: chunked, one chunk per event
            ssi_types text/event-stream;
            charset utf-8;
{add_headers}
        }}
    }}
}}
"""


def _quote(value):
    if "'" in value or "$" in value or "\\" in value:
        raise ValueError(f"a header value nginx cannot take as is: {value!r}")
    return f"'{value}'" if '"' in value else f'"{value}"'


def config(directory, port, lengths, workers=1):
    """The nginx config: ``lengths`` maps each request kind (small, big, stream) to its body's length."""
    if len(set(lengths.values())) != len(lengths):
        raise SystemExit(f"the request bodies must differ in length for the upstream's map: {lengths}")
    routes = "\n".join(f'        "{lengths[kind]}" {FILES[kind]};' for kind in ("small", "stream"))
    marker = "$http_" + MARKER.replace("-", "_")
    maps, adds = [], []
    for i, (name, value) in enumerate(OPENAI_RESPONSE_HEADERS):
        maps.append(f'    map {marker} $alloy_bench_h{i} {{ "" ""; default {_quote(value)}; }}')
        adds.append(f"            add_header {name} $alloy_bench_h{i};")
    return CONF.format(workers=workers, dir=directory, port=port, routes=routes, big=FILES["big"],
                       header_maps="\n".join(maps), add_headers="\n".join(adds))


def mock_replies_module():
    """``alloy.mock_replies``: from the installed package, else from this checkout."""
    try:
        from alloy import mock_replies
    except ImportError:
        sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        try:
            from alloy import mock_replies
        except ImportError as error:
            raise SystemExit(f"the nginx upstream's answers come from alloy.mock_replies, which does not import "
                             f"here ({error}); run with the Python that has alloy, or use --upstream mock") from error
    return mock_replies


def answers(requests):
    """The upstream's answers to the three requests ({kind: body}), from the mock's reply code:
    {kind: bytes of the file}. Serial numbers 1, 2, 3 make the ids tell the answers apart."""
    replies = mock_replies_module()
    big_request = json.loads(requests["big"])
    big_request.pop("max_tokens", None)  # the echo's own cap: a summary-sized answer
    events = replies.chat_completion(requests["stream"], 3)
    if not isinstance(events, list):
        raise SystemExit("the stream request did not produce a stream")
    return {
        "small": replies.chat_completion(requests["small"], 1),
        "big": replies.chat_completion(json.dumps(big_request, separators=(",", ":")).encode(), 2),
        "stream": FLUSH.join(events),
    }


def expected_ids():
    return {"small": "chatcmpl-mock-1", "big": "chatcmpl-mock-2", "stream": "chatcmpl-mock-3"}


def prepare(directory, port, requests, workers=1):
    """Write the answers and the config under ``directory``; returns (config path, answer facts)."""
    os.makedirs(os.path.join(directory, "replies"), exist_ok=True)
    files = answers(requests)
    for kind, data in files.items():
        path = os.path.join(directory, "replies", FILES[kind])
        with open(path, "wb") as f:
            f.write(data)
        os.chmod(path, 0o644)
    conf = os.path.join(directory, "nginx.conf")
    with open(conf, "w") as f:
        f.write(config(directory, port, {kind: len(body) for kind, body in requests.items()}, workers))
    events = files["stream"].split(FLUSH)
    facts = {"small_bytes": len(files["small"]), "big_bytes": len(files["big"]),
             "stream_events": len(events), "stream_bytes": sum(len(e) for e in events)}
    return conf, facts
