"""A request target as the routes see it: the normalized path and the query (``path_and_query``).
A leaf module: the compiled dispatcher (alloy.endpoints) cimports the pipeline, whose imports need
these, so they cannot live in alloy.endpoints itself."""

from alloy.core import clean_path


def path_and_query(target):
    """A request target as the routes see it: (normalized path, b"" or b"?query")."""
    if target[:1] != b"/":
        target = origin_form(target)
    mark = target.find(b"?")
    if mark < 0:
        return normalized(target), b""
    return normalized(target[:mark]), target[mark:]


MODEL_PATH = b"/v1/models/"


def normalized(path):
    """``clean_path``, but for one spelling it refuses: a model id holding "/" (aliases such as
    ``openai/gpt-4o``, Groq's ``meta-llama/...``), which the SDKs send as ``%2F`` in
    ``/v1/models/{id}``. The id is checked decoded, as a next hop may read it (dot segments and every
    other encoding stay refused), and kept as one segment spelled ``%2F``: the passthrough rule
    ``GET /v1/models/*`` matches it, the provider gets the id as the SDK sent it, and the model
    listing decodes it. Real slashes still split segments. An encoded slash anywhere else is still
    refused."""
    if not path.startswith(MODEL_PATH) or (b"%2F" not in path and b"%2f" not in path):
        return clean_path(path)
    clean_path(path.replace(b"%2F", b"/").replace(b"%2f", b"/"))  # what a next hop that decodes reads
    # Real slashes split segments (merged, as clean_path does); an encoded one stays inside its id.
    segments = [segment.replace(b"%2f", b"%2F") for segment in path[len(MODEL_PATH) :].split(b"/") if segment]
    return MODEL_PATH + b"/".join(segments) if segments else MODEL_PATH[:-1]


def origin_form(target):
    """RFC 9112 section 3.2.2: a server accepts a target in absolute-form (``http://host/path?q``)
    too, and routes by its path and query. The authority it names is not used for anything."""
    scheme, found, rest = target.partition(b"://")
    if not found or scheme.lower() not in (b"http", b"https"):
        return target  # asterisk-form, authority-form or garbage: refused as a path further on
    slash = rest.find(b"/")
    mark = rest.find(b"?")
    if slash < 0 or 0 <= mark < slash:
        return b"/" + rest[mark:] if mark >= 0 else b"/"
    return rest[slash:]
