"""The model a multipart/form-data request names (RFC 7578), read for a key limited to models.

Audio transcriptions and translations, image edits and variations name their model in a form field
rather than in JSON. The gate (``alloy.governance.gate``) holds a limited key to its models there
too, so the model it reads must be the one the provider will read, whatever a client does to make
them differ:

- the boundary is the Content-Type's ``boundary`` parameter, parsed as a parameter (a quoted value
  is one value; ``x="boundary=y"`` is not it) and at most 70 characters (RFC 2046 section 5.1.1);
  a form without one names no model; one of other characters than RFC 2046's, or quoted with a
  backslash, is refused (parsers disagree on ``"X\\Y"``: python-multipart, which FastAPI servers
  such as vLLM use, keeps the backslash that others drop);
- a field is a part whose ``Content-Disposition`` header (that header's own line, its parameters
  parsed) says ``name="model"``;
- whatever parsers read differently is refused rather than guessed: the model twice (which value
  wins differs), a parameter twice, a boundary after a bare LF or followed by more than spaces, a
  part header with a bare CR or LF or folded, ``name*``, a model part with a file name, a part
  header section that does not end or is longer than ``MAX_PART_HEAD``.

The body is searched with ``bytes.find`` (in C, no copy of it), part by part; a form of more than
``MAX_PARTS`` parts is refused rather than walked (these endpoints take a handful).
"""

import re

from alloy.errors import InvalidRequest

MAX_PARTS = 256
MAX_PART_HEAD = 16 * 1024  # a part's header section longer than this is refused
# parameter = token "=" ( token / quoted-string )   (RFC 9110 section 5.6.6)
# boundary := 0*69<bchars> bcharsnospace   (RFC 2046 section 5.1.1)
_BOUNDARY = re.compile(rb"[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]")
_PARAMETER = re.compile(rb';\s*([!#$%&\'*+.^_`|~0-9A-Za-z-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[!#$%&\'*+.^_`|~0-9A-Za-z-]+)')


def parameters(value):
    """(media or disposition type, lower-cased; {parameter name, lower-cased: value}) of a header
    value such as ``form-data; name="model"``; a quoted value is unquoted. A parameter given twice
    is refused: which one a provider would read is anyone's guess."""
    kind, _, rest = value.partition(b";")
    found = {}
    for name, text in _PARAMETER.findall(b";" + rest):
        if text[:1] == b'"':
            text = re.sub(rb"\\(.)", rb"\1", text[1:-1])
        name = name.lower()
        if name in found:
            raise _ambiguous(f"the parameter {name.decode()!r} twice")
        found[name] = text
    return kind.strip().lower(), found


def form_boundary(content_type):
    """The boundary of a ``multipart/form-data`` Content-Type, or None; InvalidRequest for one
    parsers may read differently."""
    kind, found = parameters(content_type)
    boundary = found.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        return None
    if b"\\" in content_type or not _BOUNDARY.fullmatch(boundary):
        raise _ambiguous("a boundary RFC 2046 does not allow (its characters, at most 70)")
    return boundary


def form_model(request):
    """The ``model`` field of a multipart/form-data body, as text; None when the form names none
    (or the body is not such a form). InvalidRequest for a form that parsers may read differently
    (see the module's docstring) or that has too many parts."""
    boundary = form_boundary(request.headers.get(b"content-type", b""))
    if boundary is None:
        return None
    body = request.body
    marker = b"--" + boundary
    delimiter = b"\r\n" + marker
    found = body.find(b"\n" + marker)
    while found >= 0:  # one pass: the delimiters are few
        if found == 0 or body[found - 1] != 13:
            raise _ambiguous("a boundary after a bare LF")  # LF-tolerant parsers would see a part there
        found = body.find(b"\n" + marker, found + 1)
    # The first delimiter line may open the body; else it follows a preamble (RFC 2046 5.1.1).
    if body.startswith(marker):
        pos = len(marker)
    else:
        pos = body.find(delimiter)
        if pos < 0:
            return None
        pos += len(delimiter)
    model = None
    for _ in range(MAX_PARTS + 1):
        if body.startswith(b"--", pos):
            return model  # the close delimiter
        line_end = body.find(b"\r\n", pos)
        if line_end < 0:
            return model  # a form that does not end: nothing more to read in it
        if body[pos:line_end].strip(b" \t"):
            raise _ambiguous("a line that starts like the boundary but is longer")
        end = body.find(delimiter, line_end)
        if end < 0:
            return model
        head_end = body.find(b"\r\n\r\n", line_end, end)
        if head_end < 0 or head_end - line_end > MAX_PART_HEAD:
            raise _ambiguous("a part whose headers do not end, or end too far")
        if _is_model_field(body[line_end + 2 : head_end]):
            if model is not None:
                raise InvalidRequest("the form names the model more than once", param="model")
            model = body[head_end + 4 : end].decode("utf-8", "replace")  # as the provider reads it
        pos = end + len(delimiter)
    raise InvalidRequest(f"the form has more than {MAX_PARTS} parts", param="model")


def _is_model_field(head):
    """Does this part's header section (CRLF-separated lines) make it the ``model`` field? Only a
    plainly written one does; anything parsers read differently is refused."""
    if not head:
        return False
    lines = head.split(b"\r\n")
    if any(b"\r" in line or b"\n" in line or line[:1] in (b" ", b"\t") for line in lines):
        raise _ambiguous("a part header with a bare CR or LF, or folded")
    dispositions = [value for name, colon, value in (line.partition(b":") for line in lines)
                    if colon and name.strip().lower() == b"content-disposition"]  # fmt: skip
    if not dispositions:
        return False
    if len(dispositions) > 1:
        raise _ambiguous("a part with two Content-Disposition headers")
    _, found = parameters(dispositions[0])
    if b"name*" in found:
        raise _ambiguous("a part named in an encoded name* parameter")
    if found.get(b"name") != b"model":
        return False
    if any(name.startswith(b"filename") for name in found):
        raise _ambiguous("a model part with a file name")  # a file to some parsers, a field to others
    return True  # whatever the disposition type: parsers read "attachment" too


def _ambiguous(what):
    return InvalidRequest(f"this key is limited to models, and the form has {what}: send a plain form", param="model")
