"""Token counts from an answer's ``usage`` object, whichever API shaped it: one reading for every
stage that counts tokens.

- ``tokens_of``: what is billed, (input, output, cached input), Anthropic's cache reads and writes
  counted as input (governance's limits, spend and ledger; a deployment's tokens-per-minute quota);
- ``reported_counts``: the two counts as the answer reports them, (prompt, completion) by OpenAI's
  names or Anthropic's (metrics and the access log);
- ``count``, ``positive_count``: one count of a provider's usage object, for the translators that
  rename them (capped: their sums must stay sane too).
"""


def tokens_of(usage):
    """(input, output, cached input) from a chat completions, Responses or Anthropic usage object."""
    if not usage:
        return 0, 0, 0
    if "prompt_tokens" in usage or "completion_tokens" in usage:
        details = usage.get("prompt_tokens_details") or {}
        cached = details.get("cached_tokens") if isinstance(details, dict) else 0
        return positive_count(usage.get("prompt_tokens")), positive_count(usage.get("completion_tokens")), positive_count(cached)
    if "input_tokens_details" in usage or "total_tokens" in usage:
        # The Responses API: input_tokens includes the cached ones, as prompt_tokens does.
        details = usage.get("input_tokens_details") or {}
        cached = details.get("cached_tokens") if isinstance(details, dict) else 0
        return positive_count(usage.get("input_tokens")), positive_count(usage.get("output_tokens")), positive_count(cached)
    # Anthropic: input_tokens excludes the cache reads and writes; count them all as input.
    read = positive_count(usage.get("cache_read_input_tokens"))
    written = positive_count(usage.get("cache_creation_input_tokens"))
    return positive_count(usage.get("input_tokens")) + read + written, positive_count(usage.get("output_tokens")), read


# No real answer comes near this many tokens; an upstream that says more is believed only up to it,
# so the counters (C integers) and the ledger never overflow.
MAX_TOKENS = 10**12


def count(usage, name):
    """``usage[name]`` as a token count (``positive_count``); 0 when ``usage`` is not an object."""
    return positive_count(usage.get(name) if type(usage) is dict else None)


def positive_count(value):
    """``value`` as a token count: 0 when absent, null or not a positive int; at most
    ``MAX_TOKENS`` (a provider's odd usage must not break a translation, nor overflow a sum)."""
    if type(value) is not int or value <= 0:
        return 0
    return value if value <= MAX_TOKENS else MAX_TOKENS


def _count(value):
    return None if type(value) is not int or value < 0 else value if value <= MAX_TOKENS else MAX_TOKENS


def reported_counts(usage):
    """(prompt, completion) as the answer names them; None for a count absent, negative or not an
    int; at most ``MAX_TOKENS``."""
    prompt = usage.get("prompt_tokens")
    if prompt is None:
        prompt = usage.get("input_tokens")
    completion = usage.get("completion_tokens")
    if completion is None:
        completion = usage.get("output_tokens")
    # Checked inline for the common case (both counts plain ints in range): this runs per answer.
    if type(prompt) is not int or not 0 <= prompt <= MAX_TOKENS:
        prompt = _count(prompt)
    if type(completion) is not int or not 0 <= completion <= MAX_TOKENS:
        completion = _count(completion)
    return prompt, completion
