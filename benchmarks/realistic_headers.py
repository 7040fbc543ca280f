#!/usr/bin/env python3
"""The headers of a real OpenAI call, for ``latency_bench --headers realistic``.

``SDK_REQUEST_HEADERS``: what the official openai Python SDK sends with a chat completion, in its
order and spelling, captured from the SDK itself (``python benchmarks/realistic_headers.py
--capture`` sends one ``client.chat.completions.create`` to a local socket and prints what
arrived). The load generator writes ``Host`` and ``Content-Length`` itself, so they are left out;
the API key is a placeholder as long as a real project key (``sk-proj-`` and 156 characters).

``OPENAI_RESPONSE_HEADERS``: what api.openai.com answers a chat completion with, modelled on
OpenAI's documented headers (the API reference's "Debugging requests": ``openai-organization``,
``openai-processing-ms``, ``openai-version``, ``x-request-id``; the rate-limits guide's six
``x-ratelimit-*``) and on the Cloudflare front headers an answer carries (``cf-ray``,
``cf-cache-status``, ``set-cookie: __cf_bm=...``, ``alt-svc``, ``strict-transport-security``);
values are plausible and anonymised, not copied from one account. The nginx upstream adds them with
``add_header`` to answers for a request that carries the SDK's ``x-stainless-lang`` header; nginx
writes ``Date``, ``Server``, ``Content-Type``, the framing and ``Connection`` itself. Alloy hides
``openai-organization``, ``openai-project`` and ``set-cookie`` from its clients (alloy.headers),
so they are part of the work the realistic variant asks of it; nginx forwards everything.
"""

import sys

# captured with --capture from openai 3.57.0 on CPython 3.11.7, Linux x86-64 (the synchronous client)
SDK_VERSION = "3.57.0"
SDK_API_KEY = "sk-proj-" + ("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_-" * 3)[:156]
SDK_REQUEST_HEADERS = [
    ("Accept-Encoding", "gzip, deflate"),
    ("Connection", "keep-alive"),
    ("authorization", f"Bearer {SDK_API_KEY}"),
    ("accept", "application/json"),
    ("content-type", "application/json"),
    ("user-agent", "OpenAI/Python 3.57.0"),
    ("x-stainless-lang", "python"),
    ("x-stainless-package-version", "3.57.0"),
    ("x-stainless-os", "Linux"),
    ("x-stainless-arch", "x64"),
    ("x-stainless-runtime", "CPython"),
    ("x-stainless-runtime-version", "3.11.7"),
    ("x-stainless-async", "false"),
    ("x-stainless-retry-count", "0"),
    ("x-stainless-read-timeout", "600"),
]

# the request header the nginx upstream keys on to add OPENAI_RESPONSE_HEADERS (the SDK always sends it)
MARKER = "x-stainless-lang"

OPENAI_RESPONSE_HEADERS = [
    ("access-control-expose-headers", "X-Request-ID"),
    ("openai-organization", "user-3kq8zvd1xw0n5tq7m2e4rjyh"),
    ("openai-processing-ms", "412"),
    ("openai-project", "proj_Vb7n2QmZcX4kL9tR1sW8yJ3e"),
    ("openai-version", "2020-10-01"),
    ("x-ratelimit-limit-requests", "10000"),
    ("x-ratelimit-limit-tokens", "10000000"),
    ("x-ratelimit-remaining-requests", "9999"),
    ("x-ratelimit-remaining-tokens", "9999946"),
    ("x-ratelimit-reset-requests", "6ms"),
    ("x-ratelimit-reset-tokens", "0s"),
    ("x-request-id", "req_4f1c9a7e2b8d4c6a9e0f3b5d7a1c2e4f"),
    ("strict-transport-security", "max-age=31536000; includeSubDomains; preload"),
    ("cf-cache-status", "DYNAMIC"),
    ("set-cookie", "__cf_bm=Qx7vK2mN9pL4rT8wZ1yB5cF3hJ6dS0aE.gU2iO7kM-1732801200-1.0.1.1-"
                   "a9Xk2LmP4qR7sT1vW3yZ5bC8dF0gH2jK4nM6pQ9rS1tU3wX5zA7cE9fG1hJ3kL5mN7pQ9rS1tU3wX5zA7cE9fG1hJ3kL5mN7; "
                   "path=/; expires=Thu, 28-Nov-24 14:10:00 GMT; domain=.api.openai.com; HttpOnly; Secure; SameSite=None"),
    ("cf-ray", "8e9b3c5d7f1a2b3c-SJC"),
    ("alt-svc", 'h3=":443"; ma=86400'),
]


def capture():
    """Send one chat completion with the installed SDK to a local socket; return its header lines
    (name, value) without Host and Content-Length, the key replaced by SDK_API_KEY."""
    import json
    import socket
    import threading

    import openai

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    received = []

    def answer():
        conn, _ = server.accept()
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(65536)
            received.append(data.split(b"\r\n\r\n")[0].decode("latin-1"))
            body = json.dumps({"id": "chatcmpl-capture", "object": "chat.completion", "created": 0, "model": "gpt-4o-mini",
                               "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"},
                                            "finish_reason": "stop"}]}).encode()
            conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(body) + body)

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    client = openai.OpenAI(api_key="sk-capture", base_url=f"http://127.0.0.1:{server.getsockname()[1]}/v1", max_retries=0)
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    thread.join(10)
    server.close()
    lines = [line.split(": ", 1) for line in received[0].split("\r\n")[1:]]
    headers = [(name, value) for name, value in lines if name.lower() not in ("host", "content-length")]
    return [(name, f"Bearer {SDK_API_KEY}" if name.lower() == "authorization" else value) for name, value in headers], openai.__version__


if __name__ == "__main__":
    if sys.argv[1:] != ["--capture"]:
        raise SystemExit("usage: realistic_headers.py --capture   (prints the installed SDK's request headers)")
    captured, version = capture()
    print(f"# openai {version}: {len(captured)} headers besides Host and Content-Length")
    for name, value in captured:
        print(f"    ({name!r}, {value!r}),")
    same = captured == SDK_REQUEST_HEADERS
    print(f"# {'the same as' if same else 'DIFFERENT from'} SDK_REQUEST_HEADERS (captured from {SDK_VERSION})")
