"""Gemini's thought signatures across an OpenAI round trip.

A thinking Gemini model signs the function calls it makes (``thoughtSignature`` beside the
``functionCall`` part) and wants each signature back when the conversation continues: Gemini 3
refuses (400) a history whose function calls come back unsigned. An OpenAI tool call has no field
for it, and a client echoes only the tool call's id. So:

- the answer's translation (``alloy.providers.gemini_stream.choice_parts``) remembers each signed
  call's signature under the tool call id the client receives (``remember``);
- the next request's translation (``alloy.providers.gemini.model_parts``) puts it back on the call
  with that id (``recall``);
- a Gemini 3 history call this process never signed (another gateway instance answered it, the
  gateway restarted, the history came from another model) gets the placeholder Google documents for
  histories without signatures, on the first call of its turn (``SKIP_VALIDATION``): the request is
  accepted, without the reasoning the real signature carried.

The memory is this process's, bounded by the bytes it holds (oldest first out).
"""

SKIP_VALIDATION = "skip_thought_signature_validator"
MAX_BYTES = 4 << 20  # signatures are a few hundred bytes to a few KB each

_signatures = {}  # tool call id -> signature, oldest first
_held = 0


def remember(call_id, signature):
    global _held
    if not isinstance(signature, str) or not signature or len(signature) > MAX_BYTES:
        return
    previous = _signatures.pop(call_id, None)
    if previous is not None:
        _held -= len(previous)
    _signatures[call_id] = signature
    _held += len(signature)
    while _held > MAX_BYTES:
        _held -= len(_signatures.pop(next(iter(_signatures))))


def recall(call_id):
    """The signature of the call the client names by ``call_id``, or None."""
    return _signatures.get(call_id) if isinstance(call_id, str) else None


def sign_unsigned_turns(contents):
    """Gemini 3: each model turn with function calls and no signature gets the placeholder on its
    first call."""
    for content in contents:
        if content["role"] != "model":
            continue
        calls = [part for part in content["parts"] if "functionCall" in part]
        if calls and not any("thoughtSignature" in part for part in calls):
            calls[0]["thoughtSignature"] = SKIP_VALIDATION
