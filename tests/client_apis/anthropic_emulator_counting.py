"""The strict Anthropic emulator (tests/emulators/anthropic.py) plus ``POST /v1/messages/count_tokens``,
for the client API tests that check the exact count reaches the client when routed to Anthropic.

    python tests/client_apis/anthropic_emulator_counting.py --port 0 [--api-key K]

Everything else is the emulator's own (its checks, request log and faults). ``count_tokens`` is
checked like a Messages request without ``max_tokens`` (as the real API does) and answers
``{"input_tokens": n}`` with the emulator's own count: the words of the system prompt and of every
block's text.
"""

import importlib.util
import os
import sys

EMULATOR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "emulators", "anthropic.py")

spec = importlib.util.spec_from_file_location("anthropic_emulator", EMULATOR)
emulator = importlib.util.module_from_spec(spec)
spec.loader.exec_module(emulator)

COUNT_TOKENS = b"/v1/messages/count_tokens"
COUNT_FIELDS = emulator.TOP_LEVEL - {
    "max_tokens",
    "stream",
    "stop_sequences",
    "temperature",
    "top_k",
    "top_p",
    "metadata",
    "service_tier",
}


class CountingEmulator(emulator.Emulator):
    def messages(self, request, path, serial):
        if path != COUNT_TOKENS:
            return super().messages(request, path, serial)
        if request.method != b"POST":
            raise emulator.Reject(405, "Method not allowed", "invalid_request_error")
        key = request.headers.get(b"x-api-key")
        if not key or (self.api_key is not None and key != self.api_key):
            raise emulator.Reject(401, "invalid x-api-key")
        if request.headers.get(b"anthropic-version") not in emulator.VERSIONS:
            raise emulator.invalid("anthropic-version: header is required")
        try:
            body = emulator.orjson.loads(request.body)
        except emulator.orjson.JSONDecodeError:
            raise emulator.invalid("There was an error parsing the body: not valid JSON") from None
        if not isinstance(body, dict):
            raise emulator.invalid("request body must be a JSON object")
        for name in body:
            if name not in COUNT_FIELDS:
                raise emulator.invalid(f"{name}: Extra inputs are not permitted")
        emulator.validate({**body, "max_tokens": 1})
        return 200, emulator.JSON_HEADER, emulator.orjson.dumps({"input_tokens": emulator.input_tokens(body)}), None


emulator.Emulator = CountingEmulator

if __name__ == "__main__":
    raise SystemExit(emulator.main(sys.argv[1:]))
