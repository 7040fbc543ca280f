"""An https provider through both upstream backends: the certificate is verified (its CA, its
host name) against the provider's ``ca_file``, else ``SSL_CERT_FILE``, else certifi's store; a
certificate that fails is a 502 naming the provider, never a hang and never an answer read from
an unverified server.

The upstream is a real TLS server on loopback with a certificate from a CA made for the test
(``trustme``), answering chat completions; it counts the requests it decrypted.
"""

import json
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import openai
import pytest
import trustme

from harness import assert_no_crash_logged, start_gateway_process

ANSWER = {"id": "chatcmpl-tls", "object": "chat.completion", "created": 1, "model": "m",
          "choices": [{"index": 0, "message": {"role": "assistant", "content": "over tls"}, "finish_reason": "stop"}],
          "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}  # fmt: skip


class TlsUpstream:
    """A chat-completions server on 127.0.0.1 speaking TLS with a certificate ``ca`` issued for
    ``names``; ``requests`` counts the requests it read."""

    def __init__(self, ca, names):
        self.requests = 0
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                self.rfile.read(int(self.headers["content-length"]))
                upstream.requests += 1
                body = json.dumps(ANSWER).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert(*names).configure_cert(context)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.base = f"https://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def ca():
    return trustme.CA()


@pytest.fixture(scope="module")
def upstream(ca):
    server = TlsUpstream(ca, ["127.0.0.1"])
    yield server
    server.close()


@pytest.fixture
def ca_pem(ca, tmp_path):
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


def gateway_for(tmp_path, base, client, ca_file=None, env=None):
    lines = f'[router]\nmax_retries = 0\n[providers.secure]\nkind = "openai"\nbase_url = "{base}"\napi_key = "sk-tls"\n'
    lines += f'client = "{client}"\nconnect_timeout = 5\ntotal_timeout = 10\n'
    if ca_file is not None:
        lines += f'ca_file = "{ca_file}"\n'
    return start_gateway_process(tmp_path / "alloy.toml", lines, env=env)


def ask(gateway):
    client = openai.OpenAI(base_url=gateway.base + "/v1", api_key="client", max_retries=0, timeout=15)
    return client.chat.completions.create(model="secure/m", messages=[{"role": "user", "content": "hi"}])


@pytest.mark.parametrize("client", ["core", "httpx"])
def test_a_provider_behind_a_private_ca_is_reached_with_its_ca_file(tmp_path, upstream, ca_pem, client):
    gateway = gateway_for(tmp_path, upstream.base, client, ca_file=ca_pem)
    try:
        before = upstream.requests
        for _ in range(3):  # the second and third on the pooled TLS connection
            assert ask(gateway).choices[0].message.content == "over tls"
        assert upstream.requests == before + 3
    finally:
        gateway.stop()
    assert_no_crash_logged(gateway)


@pytest.mark.parametrize("client", ["core", "httpx"])
def test_ssl_cert_file_from_the_environment_is_the_default_store(tmp_path, upstream, ca_pem, client):
    gateway = gateway_for(tmp_path, upstream.base, client, env={"SSL_CERT_FILE": str(ca_pem)})
    try:
        assert ask(gateway).choices[0].message.content == "over tls"
    finally:
        gateway.stop()


@pytest.mark.parametrize("client", ["core", "httpx"])
def test_a_certificate_from_an_unknown_ca_is_a_502_naming_the_provider(tmp_path, upstream, client):
    # Without its CA the default store (certifi) does not trust it: nothing is read from it.
    gateway = gateway_for(tmp_path, upstream.base, client)
    try:
        before = upstream.requests
        with pytest.raises(openai.APIStatusError) as caught:
            ask(gateway)
        assert caught.value.status_code == 502
        message = caught.value.body["message"] if "message" in caught.value.body else str(caught.value)
        assert "upstream 'secure'" in message and "127.0.0.1" not in message
        assert upstream.requests == before
    finally:
        gateway.stop()
    assert_no_crash_logged(gateway)


@pytest.mark.parametrize("client", ["core", "httpx"])
def test_a_certificate_for_another_host_is_refused(tmp_path, ca, ca_pem, client):
    # The right CA, the wrong name: the host name is checked, not only the signature.
    elsewhere = TlsUpstream(ca, ["api.example.com"])
    gateway = gateway_for(tmp_path, elsewhere.base, client, ca_file=ca_pem)
    try:
        with pytest.raises(openai.APIStatusError) as caught:
            ask(gateway)
        assert caught.value.status_code == 502 and elsewhere.requests == 0
    finally:
        gateway.stop()
        elsewhere.close()
