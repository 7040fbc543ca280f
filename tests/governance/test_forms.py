"""The model a multipart form names (alloy.forms), as a key limited to models is held to it: the
gate must read the model the provider will read, whatever a client does to make them differ. Each
tampered form here either yields the model a standard parser (Python's email package, which reads
the form the way providers' frameworks do) finds, or is refused."""

from email.parser import BytesParser
from email.policy import HTTP

import pytest

from alloy.errors import InvalidRequest
from alloy.forms import MAX_PARTS, form_model


class Request:
    def __init__(self, content_type, body):
        self.headers = {b"content-type": content_type}
        self.body = body


def form(*parts, boundary=b"B0und", preamble=b""):
    """A multipart/form-data body of ``parts``, each (header lines, content)."""
    out = [preamble]
    for head, content in parts:
        out.append(b"--" + boundary + b"\r\n" + b"".join(line + b"\r\n" for line in head) + b"\r\n" + content + b"\r\n")
    out.append(b"--" + boundary + b"--\r\n")
    return b"".join(out)


def field(name, value):
    return ([b'Content-Disposition: form-data; name="%s"' % name], value)


AUDIO = ([b'Content-Disposition: form-data; name="file"; filename="a.wav"', b"Content-Type: audio/wav"], b"RIFF\r\n--not-it\r\n")


def standard_model(content_type, body):
    """The model field as Python's email parser reads the form (None when it finds none)."""
    message = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + content_type + b"\r\n\r\n" + body)
    values = [part.get_payload(decode=True).decode() for part in message.iter_parts()
              if part.get_param("name", header="content-disposition") == "model"
              and part.get_param("filename", header="content-disposition") is None]  # fmt: skip
    return values[-1] if values else None


@pytest.mark.parametrize(
    "content_type, body",
    [
        (b"multipart/form-data; boundary=B0und", form(field(b"model", b"whisper-1"), AUDIO)),
        (b'multipart/form-data; boundary="B0und"', form(AUDIO, field(b"model", b"whisper-1"))),
        (b"Multipart/Form-Data; charset=utf-8; Boundary=B0und", form(field(b"model", b" gpt-4o-mini "))),
        (b"multipart/form-data; boundary=B0und", form(field(b"model", b"whisper-1"), preamble=b"ignored\r\n")),
        # a look-alike of the boundary inside another parameter is not the boundary
        (b'multipart/form-data; x="boundary=Fake"; boundary=B0und', form(field(b"model", b"whisper-1"))),
        (b"multipart/form-data; xboundary=Fake; boundary=B0und", form(field(b"model", b"whisper-1"))),
        # "name=model" inside a file's name, or in another header, does not make a file the field
        (b"multipart/form-data; boundary=B0und",
         form(([b'Content-Disposition: form-data; name="file"; filename="a; name=model"'], b"gpt-4o-mini"), field(b"model", b"whisper-1"))),
        (b"multipart/form-data; boundary=B0und",
         form(([b'X-Note: content-disposition: x; name="model"', b'Content-Disposition: form-data; name="file"'], b"gpt-4o-mini"),
              field(b"model", b"whisper-1"))),
        # no model field at all
        (b"multipart/form-data; boundary=B0und", form(AUDIO)),
        # a disposition type other than form-data still names the field, to parsers as to the gate
        (b"multipart/form-data; boundary=B0und", form(([b'Content-Disposition: attachment; name="model"'], b"gpt-4o"))),
    ],
)  # fmt: skip
def test_the_model_read_is_the_one_a_standard_parser_reads(content_type, body):
    assert form_model(Request(content_type, body)) == standard_model(content_type, body)


@pytest.mark.parametrize(
    "content_type, body",
    [
        (b"multipart/form-data; boundary=B0und", form(field(b"model", b"gpt-4o-mini"), field(b"model", b"gpt-4o"))),
        (b"multipart/form-data; boundary=A; boundary=B0und", form(field(b"model", b"gpt-4o"))),
        (b"multipart/form-data; boundary=B0und",
         form(([b'Content-Disposition: form-data; name="file"; name="model"'], b"gpt-4o"))),
        (b"multipart/form-data; boundary=B0und",
         form(([b'Content-Disposition: form-data; name="file"', b'Content-Disposition: form-data; name="model"'], b"gpt-4o"))),
        (b"multipart/form-data; boundary=B0und", form(*[field(b"x", b"1")] * (MAX_PARTS + 1))),
        # a line that starts like the boundary: content to standard parsers, a delimiter to a prefix match
        (b"multipart/form-data; boundary=B0und",
         form(field(b"model", b"whisper-1\r\n--B0undX\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\ngpt-4o"))),
        # LF-only lines (read by LF-tolerant parsers), then a CRLF tail showing the gate another model
        (b"multipart/form-data; boundary=B0und",
         b'--B0und\nContent-Disposition: form-data; name="model"\n\ngpt-4o\n' + form(field(b"model", b"whisper-1"))),
        (b"multipart/form-data; boundary=B0und",
         form(([b"X-Pad: " + b"x" * 20000, b'Content-Disposition: form-data; name="model"'], b"gpt-4o"))),
        (b"multipart/form-data; boundary=B0und", form(([b"Content-Disposition: form-data; name*=UTF-8''model"], b"gpt-4o"))),
        (b"multipart/form-data; boundary=B0und", form(([b'Content-Disposition: form-data; name="model"; filename=""'], b"gpt-4o"))),
        (b"multipart/form-data; boundary=B0und",
         form(([b"Content-Disposition: form-data;", b' name="model"'], b"gpt-4o"), field(b"model", b"whisper-1"))),
        (b"multipart/form-data; boundary=B0und",
         form(([b'X-A: 1\nContent-Disposition: form-data; name="model"'], b"gpt-4o"))),
        # python-multipart (FastAPI, vLLM) keeps the backslash: its boundary is X\Y, ours would be XY
        (b'multipart/form-data; boundary="X\\Y"', form(field(b"model", b"gpt-4o"), boundary=b"X\\Y")
         + form(field(b"model", b"whisper-1"), boundary=b"XY")),
        (b"multipart/form-data; boundary=" + b"b" * 71, form(field(b"model", b"gpt-4o"), boundary=b"b" * 71)),
        (b'multipart/form-data; boundary="B0und "', form(field(b"model", b"gpt-4o"), boundary=b"B0und ")),
        (b'multipart/form-data; boundary="B0\x00und"', form(field(b"model", b"gpt-4o"), boundary=b"B0\x00und")),
    ],
    ids=[
        "the model twice", "the boundary twice", "the name twice", "two dispositions", "too many parts",
        "a boundary look-alike line", "bare LF lines", "an overlong part head", "name*", "a model with a file name",
        "a folded disposition", "a bare LF in a part head", "a backslash in the boundary", "a 71-character boundary",
        "a boundary ending in a space", "a NUL in the boundary",
    ],
)  # fmt: skip
def test_an_ambiguous_or_oversized_form_is_refused(content_type, body):
    with pytest.raises(InvalidRequest):
        form_model(Request(content_type, body))


def test_a_form_without_a_boundary_names_no_model():
    body = form(field(b"model", b"gpt-4o"))
    assert form_model(Request(b"application/x-www-form-urlencoded", b"model=gpt-4o")) is None
    assert form_model(Request(b"multipart/form-data", body)) is None
