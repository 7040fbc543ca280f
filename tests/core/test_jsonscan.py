"""scan_body / rewrite_model: the top-level model and stream of a request body, and the model splice.

The oracle is orjson: whatever ``orjson.loads`` decides the top-level ``model`` and ``stream`` are
(last key wins), the scanner must decide the same, or refuse the body with InvalidRequest.
"""

import json

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alloy import errors


def oracle(body):
    """(model, stream) as orjson decides them."""
    doc = orjson.loads(body)
    return doc.get("model"), bool(doc.get("stream"))


def scan(core, body):
    result = core.scan_body(body)
    return result.model, result.stream


# --- finding model and stream ---------------------------------------------------------------------

FOUND = [
    (b'{"model":"gpt-4o","stream":true}', "gpt-4o", True),
    (b'{"stream":false,"model":"gpt-4o"}', "gpt-4o", False),
    (b'{"model":"gpt-4o"}', "gpt-4o", False),
    (b'{"stream":true}', None, True),
    (b"{}", None, False),
    (b'{"model":"m","stream":null}', "m", False),
    # model after a long messages array whose items have their own "model" keys
    (
        b'{"messages":[{"role":"user","content":"hi","model":"inner"},{"model":"inner2"}],'
        b'"temperature":0.5,"model":"outer","stream":true}',
        "outer",
        True,
    ),
    # nested model/stream keys are ignored
    (b'{"metadata":{"model":"nested","stream":true}}', None, False),
    (b'{"a":[{"b":{"model":"deep"}}],"model":"top"}', "top", False),
    (b'{"a":[[["model"]]],"stream":true}', None, True),
    # look-alike keys are other keys
    (b'{"models":"x","Model":"y","my_model":"z","model_name":"w","model ":"v"}', None, False),
    (b'{"streams":true,"Stream":true}', None, False),
    # strings elsewhere holding quotes, escapes, braces and the word model
    (
        b'{"prompt":"he said \\"model\\": \\"fake\\" and {[","model":"real"}',
        "real",
        False,
    ),
    (b'{"p":"ends in backslash \\\\","model":"m"}', "m", False),
    (b'{"p":"\\\\\\"","model":"m"}', "m", False),
    (b'{"p":"\\u0022model\\u0022:\\u0022x\\u0022","model":"m"}', "m", False),
    (b'{"p":"}","q":"]","r":"{","s":"[","model":"m"}', "m", False),
    (b'{"p":"\\"model\\":\\"x\\",","stream":true}', None, True),
    # every JSON value type before the model
    (
        b'{"n":null,"t":true,"f":false,"i":-12,"x":1.5e-3,"a":[],"o":{},"s":"","model":"m"}',
        "m",
        False,
    ),
    # whitespace variants (RFC 8259 section 2: space, tab, LF, CR)
    (b' \t\r\n{ "model" : "m" , "stream" : true } \r\n\t ', "m", True),
    (b'{\n  "model": "m",\n  "stream": false\n}\n', "m", False),
    (b'{\r\n\t"stream"\t:\ttrue,\r\n\t"model"\t:\t"m"\r\n}', "m", True),
    # model string with escapes: decoded properly
    (b'{"model":"gpt\\u002d4o"}', "gpt-4o", False),
    (b'{"model":"a\\"b"}', 'a"b', False),
    (b'{"model":"\\/slash"}', "/slash", False),
    (b'{"model":"sl\\/ash","stream":true}', "sl/ash", True),
    (b'{"model":"\\ud83d\\ude00"}', "\U0001f600", False),
    # non-ASCII model passes through as text
    ('{"model":"mod\u00e8le-\u2603"}'.encode(), "mod\u00e8le-\u2603", False),
    # repeated top-level keys: the last one wins, like orjson
    (b'{"model":"a","model":"b"}', "b", False),
    (b'{"model":"a","x":1,"model":"b","stream":true}', "b", True),
    (b'{"stream":true,"stream":false,"model":"m"}', "m", False),
    (b'{"stream":false,"stream":true}', None, True),
    (b'{"model":1,"model":"b"}', "b", False),
    (b'{"stream":"x","stream":true}', None, True),
    (b'{"model":"a","model":"b","model":"c"}', "c", False),
    # a key spelled with escapes is still the key
    (b'{"\\u006dodel":"escaped-key"}', "escaped-key", False),
    (b'{"model":"plain","\\u006dodel":"escaped-key"}', "escaped-key", False),
    (b'{"\\u006dodel":"escaped-key","model":"plain"}', "plain", False),
    (b'{"str\\u0065am":true}', None, True),
]


@pytest.mark.parametrize("body,model,stream", FOUND)
def test_finds_model_and_stream(core, body, model, stream):
    assert oracle(body) == (model, stream)  # the vector itself agrees with orjson
    result = core.scan_body(body)
    assert result.model == model
    assert result.stream is stream


@pytest.mark.parametrize("body,model,stream", FOUND)
def test_scan_keeps_the_body(core, body, model, stream):
    result = core.scan_body(body)
    assert orjson.loads(result.body) == orjson.loads(body)


def test_scan_result_body_is_the_input_when_no_fallback(core):
    body = b'{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}'
    assert core.scan_body(body).body == body


def test_scan_result_types(core):
    result = core.scan_body(b'{"model":"m","stream":true}')
    assert type(result.model) is str
    assert result.stream is True
    assert isinstance(result.body, (bytes,))
    assert core.scan_body(b"{}").model is None
    assert core.scan_body(b"{}").stream is False


# --- refusals ----------------------------------------------------------------------------------

INVALID = [
    b"",
    b" ",
    b"null",
    b"true",
    b"1",
    b'"model"',
    b"[]",
    b'[{"model":"m"}]',
    b"{",
    b"}",
    b'{"model":"m"',
    b'{"model":"m"}}',
    b'{"model":"m"} x',
    b'{"model":"m"}{}',
    b'{"model":"m",}',
    b'{,"model":"m"}',
    b'{"model" "m"}',
    b'{"model":"m" "stream":true}',
    b"{'model':'m'}",
    b'{model:"m"}',
    b'{"model":"m","x":[1,2}',
    b'{"model":"m","x":"unterminated}',
    b'{"model":"unterminated}',
    b'{"model":"m","x":[[[[]]]}',
    b'{"model":"\\q"}',
    b'{"model":"\\u12"}',
    b'{"model":"\xff\xfe"}',
    # model not a string
    b'{"model":1}',
    b'{"model":true}',
    b'{"model":["m"]}',
    b'{"model":{"name":"m"}}',
    b'{"model":"a","model":1}',
    # stream neither a boolean nor null
    b'{"model":"m","stream":"true"}',
    b'{"model":"m","stream":1}',
    b'{"model":"m","stream":0}',
    b'{"model":"m","stream":[]}',
    b'{"model":"m","stream":{}}',
    b'{"stream":true,"stream":"no"}',
]


@pytest.mark.parametrize("body", INVALID)
def test_invalid_bodies_are_400(core, body):
    with pytest.raises(errors.InvalidRequest) as info:
        core.scan_body(body)
    assert info.value.status == 400


# The model is echoed in the x-alloy-model response header and may be placed in an upstream URL: a
# name JSON allows but an HTTP head does not (an escaped or raw CR/LF, NUL, any control, a Unicode
# line separator), empty, or longer than 256 bytes is refused where it is read, naming the field.
UNSAFE_MODELS = [
    b'{"model":"gpt-4o\\r\\nSet-Cookie: a=b"}',
    b'{"model":"gpt-4o\r\nSet-Cookie: a=b"}',  # raw CR LF: not JSON, still never a header
    b'{"model":"a\\u0000b"}',
    b'{"model":"a\x00b"}',
    b'{"model":"tab\\there"}',
    b'{"model":"tab\there"}',
    b'{"model":"del\x7f"}',
    b'{"model":"c1\\u0085"}',
    b'{"model":"line\\u2028sep"}',
    b'{"model":"\n"}',
    b'{"model":""}',  # names no model: a wildcard route would forward it
    b'{"model":"' + b"m" * 257 + b'"}',
    b'{"model":"' + "\u00e8".encode() * 129 + b'"}',  # 129 characters, 258 bytes
    b'{"model":"a","model":"b\\n"}',  # the model that counts is the last one
]


@pytest.mark.parametrize("body", UNSAFE_MODELS)
def test_models_unfit_for_a_header_are_400_naming_model(core, body):
    with pytest.raises(errors.InvalidRequest) as info:
        core.scan_body(body)
    assert info.value.status == 400
    assert info.value.param == "model"


@pytest.mark.parametrize("model", ["m" * 256, "\u00e8" * 128, "gpt-4o mini (2024)", "azure/x", "mod\u00e8le-\u2603"])
def test_printable_models_up_to_256_bytes_pass(core, model):
    model = model.encode().decode("unicode_escape") if "\\u" in model else model
    assert core.scan_body(orjson.dumps({"model": model})).model == model


def test_null_model_is_no_model(core):
    # The proxy answers it as a missing model (400 "you must provide a model parameter").
    assert core.scan_body(b'{"model":null,"messages":[]}').model is None


# Invalid JSON hidden inside values the scanner skips. The scanner checks structure (strings,
# nesting depth, commas and colons at the top level), not the spelling of every literal, number or
# bracket inside the values it skips: such a body is either refused here or forwarded for the
# provider to refuse. What must never happen is a routing decision on a model other than the one a
# lenient parser would read, so an accepted body reports the model "m" it visibly names.
INVALID_INSIDE_SKIPPED = [
    b'{"model":"m","x":tru}',
    b'{"model":"m","x":nul}',
    b'{"model":"m","x":01}',
    b'{"model":"m","x":1.}',
    b'{"model":"m","x":-}',
    b'{"model":"m","x":NaN}',
    b'{"model":"m","x":[,]}',
    b'{"model":"m","x":[1,]}',
    b'{"model":"m","x":{"y":1]}',
    b'{"model":"m","x":{"a"}}',
    b'{"model":"m","x":"a\\qb"}',
    b'{"model":"m","x":"raw \x01 control"}',
    b'{"model":"raw \x01 control"}',
    b'{"model":"m","x":"\xff"}',
]


@pytest.mark.parametrize("body", INVALID_INSIDE_SKIPPED)
def test_invalid_json_inside_skipped_values_is_refused_or_routed_on_its_visible_model(core, body):
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(body)
    try:
        result = core.scan_body(body)
    except errors.InvalidRequest:
        return
    assert result.model in ("m", "raw \x01 control")


# --- rewrite_model ---------------------------------------------------------------------------------


def splice_parts(body, model_token):
    """(before, after): the bytes around the one occurrence of ``model_token`` in ``body``."""
    assert body.count(model_token) == 1
    i = body.index(model_token)
    return body[:i], body[i + len(model_token) :]


def assert_spliced(out, before, after, new):
    assert out.startswith(before)
    assert out.endswith(after)
    assert len(out) >= len(before) + len(after)
    assert orjson.loads(out[len(before) : len(out) - len(after)]) == new


def test_rewrite_exact_bytes(core):
    body = b'{"model":"gpt-4o","messages":[]}'
    out = core.rewrite_model(core.scan_body(body), "openai/gpt-4o-mini")
    assert out == b'{"model":"openai/gpt-4o-mini","messages":[]}'


def test_rewrite_keeps_whitespace_and_order(core):
    body = b'{\n  "messages": [ {"role": "user", "model": "inner"} ],\n  "model" :  "a" ,\n  "stream": true\n}\n'
    out = core.rewrite_model(core.scan_body(body), "llama-3.1-70b")
    assert out == body.replace(b'"a"', b'"llama-3.1-70b"')


@pytest.mark.parametrize(
    "new", ["x", "", 'quo"te', "back\\slash", "new\nline", "tab\t", "mod\u00e8le \u2603 \U0001f600",
            "\x00\x1f", "</script>"]
)
def test_rewrite_to_models_needing_escapes(core, new):
    body = b'{"a":1,"model":"old","b":[2]}'
    out = core.rewrite_model(core.scan_body(body), new)
    before, after = splice_parts(body, b'"old"')
    assert_spliced(out, before, after, new)
    assert orjson.loads(out) == {"a": 1, "model": new, "b": [2]}


@pytest.mark.parametrize(
    "body",
    [
        b'{"model":"gpt\\u002d4o","x":"keep \\"me\\""}',
        b'{"model":"a","model":"b","x":1}',
        b'{"model":"a","x":{"model":"nested"},"model":"b"}',
        b'{"x":1,"model":"a\\"b"}',
        b'{"model":1,"model":"b"}',
        b'{"\\u006dodel":"escaped-key","x":2}',
        b'{"model":"plain","\\u006dodel":"escaped-key"}',
    ],
)
def test_rewrite_after_fallback_decodes_to_original_with_new_model(core, body):
    out = core.rewrite_model(core.scan_body(body), "replaced")
    expected = orjson.loads(body)
    expected["model"] = "replaced"
    assert orjson.loads(out) == expected


def test_rewrite_model_parts_concatenate_to_rewrite_model(core):
    bodies = [
        b'{"model":"gpt-4o","messages":[]}',
        b'{"messages":[{"content":"' + b"x" * 200_000 + b'"}],"model":"m"}',
        b'{"model":"a","model":"b"}',
        b'{"model":"gpt\\u002d4o"}',
    ]
    for body in bodies:
        result = core.scan_body(body)
        parts = core.rewrite_model_parts(result, "new-model")
        assert all(isinstance(p, (bytes, memoryview)) for p in parts)
        assert b"".join(bytes(p) for p in parts) == core.rewrite_model(result, "new-model")


def test_one_megabyte_body(core):
    content = ('tricky \\"model\\": \\"no\\" {[}] \\\\ \u00e9 ' * 30000).encode()
    assert len(content) > 1_000_000
    body = (
        b'{"messages":[{"role":"system","content":"' + content + b'"},'
        b'{"role":"user","content":"hi","model":"inner"}],"max_tokens":10,'
        b'"model":"gpt-4o","stream":true}'
    )
    result = core.scan_body(body)
    assert (result.model, result.stream) == ("gpt-4o", True)
    out = core.rewrite_model(result, "azure/gpt-4o")
    before, after = splice_parts(body, b'"gpt-4o"')
    assert_spliced(out, before, after, "azure/gpt-4o")
    parts = core.rewrite_model_parts(result, "azure/gpt-4o")
    assert b"".join(bytes(p) for p in parts) == out


def test_one_megabyte_body_model_first(core):
    body = b'{"model":"m","messages":[' + b'{"role":"user","content":"abc"},' * 40000 + b"{}]}"
    assert len(body) > 1_000_000
    result = core.scan_body(body)
    assert result.model == "m"
    out = core.rewrite_model(result, "n")
    assert out == b'{"model":"n"' + body[len(b'{"model":"m"') :]


# --- property: any object, written any way, agrees with orjson ---------------------------------

json_text = st.lists(
    st.characters(codec="utf-8", exclude_categories=("Cs",))
    | st.sampled_from(['"', "\\", "{", "}", "[", "]", ":", ",", "model", "stream", "\\u0022"]),
    max_size=8,
).map("".join)
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | json_text
)
json_keys = st.sampled_from(["model", "stream", "messages", "x", "model\\", "Model"]) | json_text
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(json_keys, children, max_size=4),
    max_leaves=12,
)
whitespace = st.sampled_from(["", " ", "\n", "\t", "\r\n", "  \n  "])


@st.composite
def documents(draw):
    """(body, (start, end) of the model value token or None, top-level keys in order).

    The object is written member by member so the position of the model value is known exactly.
    """
    members = draw(
        st.lists(
            st.tuples(
                st.sampled_from(["stream", "messages", "temperature", "x"]) | json_text,
                json_values,
            ),
            max_size=5,
        )
    )
    ensure_ascii = draw(st.booleans())
    pieces = []
    for key, value in members:
        if key == "model":
            continue
        if key == "stream":
            value = draw(st.none() | st.booleans())
        pieces.append(
            (json.dumps(key, ensure_ascii=ensure_ascii), json.dumps(value, ensure_ascii=ensure_ascii))
        )
    if draw(st.booleans()):
        model = draw(json_text)
        position = draw(st.integers(0, len(pieces)))
        pieces.insert(position, ('"model"', json.dumps(model, ensure_ascii=ensure_ascii)))
    if pieces and draw(st.integers(0, 9)) == 0:  # a repeated top-level key
        pieces.insert(draw(st.integers(0, len(pieces))), draw(st.sampled_from(pieces)))
    out = (draw(whitespace) + "{").encode()
    span = None
    for i, (key, value) in enumerate(pieces):
        if i:
            out += b","
        out += (draw(whitespace) + key + draw(whitespace) + ":" + draw(whitespace)).encode()
        if key == '"model"':
            span = (len(out), len(out) + len(value.encode()))
        out += (value + draw(whitespace)).encode()
    out += ("}" + draw(whitespace)).encode()
    return out, span, [k for k, _ in pieces]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=documents(), new=json_text)
def test_property_scan_and_rewrite_agree_with_orjson(core, doc, new):
    body, span, keys = doc
    model, stream = oracle(body)
    if model is not None and (not model or not model.isprintable() or len(model.encode()) > 256):
        with pytest.raises(errors.InvalidRequest):  # unfit for a header: refused, see UNSAFE_MODELS
            core.scan_body(body)
        return
    result = core.scan_body(body)
    assert result.model == model
    assert result.stream is stream
    if model is None:
        return
    out = core.rewrite_model(result, new)
    expected = orjson.loads(body)
    expected["model"] = new
    assert orjson.loads(out) == expected
    start, end = span
    escaped_key = any("\\" in key for key in keys)  # might spell "model": orjson decides
    if len(set(keys)) == len(keys) and b"\\" not in body[start:end] and not escaped_key:
        # no fallback was needed: a splice, every byte outside the model value unchanged
        assert_spliced(out, body[:start], body[end:], new)


# --- find_usage: the usage object of an answer's tail or a stream's last events --------------------

USAGE = {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15, "prompt_tokens_details": {"cached_tokens": 4}}


def test_find_usage_in_a_complete_answer(core):
    body = orjson.dumps(
        {"id": "c", "choices": [{"message": {"content": 'a "usage": {"fake": 1} inside text'}}], "usage": USAGE}
    )
    assert core.find_usage(body) == USAGE


def test_find_usage_in_the_last_events_of_a_stream_skipping_null_usage(core):
    events = b"".join(
        b"data: " + orjson.dumps(chunk) + b"\n\n"
        for chunk in (
            {"choices": [{"delta": {"content": "hi"}}], "usage": None},
            {"choices": [], "usage": USAGE},
        )
    )
    assert core.find_usage(events + b"data: [DONE]\n\n") == USAGE


@pytest.mark.parametrize(
    "data",
    [b"", b'{"usage":null}', b'{"usage": 3}', b'{"x":1}', b'{"usage":{"prompt_tokens":1', b'data: {"usage":null}\n\n'],
)
def test_find_usage_says_none_when_there_is_no_whole_usage_object(core, data):
    assert core.find_usage(data) is None


@pytest.mark.parametrize(
    "data, expected",
    [
        (b'"usage""usage":{"a":1}', {"a": 1}),  # two names back to back: the later one has the object
        (b'{"usage":{"a":1}}"usage"', {"a": 1}),  # a last name with no value: the one before it
        (b'"usage":{"b":2}' + b'x' * 5000 + b'"usage":5', {"b": 2}),  # far back
        (b'usage":{"a":1}', None),  # no opening quote
    ],
)
def test_find_usage_looks_back_from_the_end(core, data, expected):
    assert core.find_usage(data) == expected


# --- attribution: the top-level user and metadata, found on the way ----------------------------


@pytest.mark.parametrize(
    "body",
    [
        b'{"model":"m","user":"u-1","messages":[{"role":"user","content":"\\"user\\": no"}],"metadata":{"a":"b"}}',
        b'{"model":"m","messages":[{"role":"user"}],"tools":[{"metadata":{"x":"y"},"user":"nested"}]}',
        b'{"model":"m","user":null,"metadata":[1, 2]}',
        b'{"model":"m\\u00e9","user":"caf\\u00e9","metadata":{"k":"v"}}',  # an escape: orjson decides
        b'{"model":"m","model":"n","user":"u","metadata":{}}',  # a repeated key: orjson decides
        b'{ "user" : "spaced" , "metadata" :\t{ "k" : "v" } }',
    ],
)
def test_user_and_metadata_are_the_top_level_values(core, body):
    result = core.scan_body(body)
    document = orjson.loads(body)
    for name in ("user", "metadata"):
        raw = getattr(result, name)
        if name in document:
            assert orjson.loads(raw) == document[name]
        else:
            assert raw is None


# --- the token cap: what a tokens-per-minute limit reserves for the answer ----------------------


@pytest.mark.parametrize(
    "body, cap",
    [
        (b'{"model":"m","max_tokens":100}', 100),
        (b'{"model":"m","max_completion_tokens":64,"max_tokens":100}', 64),
        (b'{"max_tokens":100,"model":"m","max_completion_tokens":0}', 0),
        (b'{"model":"m","max_completion_tokens":null,"max_tokens":7}', 7),  # null: not a cap
        (b'{"model":"m","max_tokens":-5}', 0),
        (b'{"model":"m","max_tokens":1.5}', 0),
        (b'{"model":"m","max_tokens":"100"}', 0),
        (b'{"model":"m","max_tokens":12345678901234567890123}', 999_999_999),
        (b'{"model":"m"}', 0),
        # nested caps (a tool's schema, a message's text) are not the request's
        (b'{"model":"m","tools":[{"max_tokens":5}],"messages":[{"content":"\\"max_tokens\\": 9"}]}', 0),
        (b'{"model":"m\\u00e9","max_tokens":33}', 33),  # an escape: orjson decides, same answer
        (b'{"model":"m","model":"n","max_completion_tokens":8}', 8),  # a repeated key: orjson decides
    ],
)
def test_max_tokens_is_the_top_level_cap(core, body, cap):
    assert core.scan_body(body).max_tokens == cap


@pytest.mark.parametrize(
    "body, cap",
    [
        (b'{"model":"m","n":3,"max_tokens":100}', 300),  # three choices, each up to the cap
        (b'{"max_completion_tokens":16,"model":"m","n":20}', 320),
        (b'{"model":"m","n":1,"max_tokens":100}', 100),
        (b'{"model":"m","n":0,"max_tokens":100}', 100),  # not a count of choices: the provider refuses it
        (b'{"model":"m","n":null,"max_tokens":100}', 100),
        (b'{"model":"m","n":"4","max_tokens":100}', 100),
        (b'{"model":"m","n":2.0,"max_tokens":100}', 100),
        (b'{"model":"m","n":4}', 0),  # no cap: nothing to multiply
        (b'{"model":"m","n":99999999999,"max_tokens":100000}', 999_999_999),
        (b'{"model":"m","tools":[{"n":5}],"max_tokens":10}', 10),  # a nested n is not the request's
        (b'{"model":"m\\u00e9","n":2,"max_tokens":33}', 66),  # an escape: orjson decides, same answer
    ],
)
def test_max_tokens_counts_every_choice_asked_for(core, body, cap):
    # A tokens-per-minute reservation of n answers (OpenAI's own estimate multiplies too).
    assert core.scan_body(body).max_tokens == cap
