"""Body scan + model rewrite: read the top-level ``model`` and ``stream`` of a chat request and
forward it with ``model`` replaced (what the proxy does for every passthrough request).

Alloy's scanner skips strings and nested values with bracket counting and splices the new model
into the original bytes; the alternatives decode the whole document and re-encode it.
"""

import json

import orjson
import pytest

from data import BIG_BODY, BIG_CHAT, REWRITTEN_MODEL, SMALL_BODY, SMALL_CHAT

CASES = {
    "300 B chat body": (SMALL_BODY, SMALL_CHAT),
    "1 MB chat body": (BIG_BODY, BIG_CHAT),
}


def rewrite_core(core, body):
    result = core.scan_body(body)
    return result.model, result.stream, core.rewrite_model(result, REWRITTEN_MODEL)


def rewrite_orjson(orjson_module, body):
    document = orjson_module.loads(body)
    model, stream = document.get("model"), bool(document.get("stream"))
    document["model"] = REWRITTEN_MODEL
    return model, stream, orjson_module.dumps(document)


def rewrite_json(json_module, body):
    document = json_module.loads(body)
    model, stream = document.get("model"), bool(document.get("stream"))
    document["model"] = REWRITTEN_MODEL
    return model, stream, json_module.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


REWRITERS = {"compiled": rewrite_core, "pure": rewrite_core, "orjson": rewrite_orjson, "json": rewrite_json}


def _correct(output, document):
    model, stream, body = output
    expected = dict(document, model=REWRITTEN_MODEL)
    return model == document["model"] and stream == document["stream"] and orjson.loads(body) == expected


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("impl", list(REWRITERS), indirect=True)
def test_scan_and_rewrite(benchmark, record, request, impl, case):
    body, document = CASES[case]
    rewrite = REWRITERS[request.node.callspec.params["impl"]]
    record(f"scan + rewrite model: {case}", _correct(rewrite(impl, body), document))
    benchmark(rewrite, impl, body)
