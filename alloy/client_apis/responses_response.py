"""The facts a translated Responses answer is made of: its ids, the Response object's shell (what it
echoes of the request), usage, status, and error answers. ``responses_stream`` builds the output
items and events from these; ``responses_wire`` writes them.

Response mapping (OpenAI chat completion -> Response)
    id                  "resp_" + the completion id without "chatcmpl-" (a fresh one without)
    model               the model name the client asked for
    output              items in order: ``reasoning`` (its summary is the completion's
                        ``reasoning_content`` / ``reasoning``), ``message`` (``output_text`` with
                        the content, ``refusal`` with a refusal), one ``function_call`` per tool
                        call (``call_id`` = the tool call id, ``arguments`` as they came)
    status              "completed"; finish_reason length -> "incomplete" with
                        ``incomplete_details.reason`` max_output_tokens; content_filter ->
                        "incomplete", reason content_filter
    usage               input_tokens = prompt_tokens (cached ones included, as OpenAI counts),
                        ``input_tokens_details.cached_tokens`` and ``cache_write_tokens`` (from
                        ``prompt_tokens_details``: the Anthropic translation reports cache writes,
                        OpenAI's chat does not: 0), output_tokens = completion_tokens,
                        ``output_tokens_details.reasoning_tokens``, total_tokens = their sum
    echoed              instructions, tools, tool_choice, parallel_tool_calls, temperature, top_p,
                        max_output_tokens, reasoning, text, metadata, user as the client sent them
                        (the defaults OpenAI reports when it did not); ``store`` is false: nothing
                        of a translated response is kept
Errors keep OpenAI's shape: an upstream error answer is relayed with its status and body (the
chat completions error object is the Responses one); Alloy's own errors are ``alloy.errors``.
"""

import time
import uuid

from alloy.usage import positive_count

ECHOED = ("instructions", "max_output_tokens", "metadata", "reasoning", "temperature", "top_p", "user")
INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


def bare_id(completion_id):
    """The completion id without "chatcmpl-", or a fresh hex one."""
    if isinstance(completion_id, str) and completion_id:
        return completion_id.removeprefix("chatcmpl-")
    return uuid.uuid4().hex


def response_usage(usage):
    """Chat completions usage -> Responses usage; None when the upstream sent none."""
    if not isinstance(usage, dict):
        return None
    prompt = positive_count(usage.get("prompt_tokens"))
    output = positive_count(usage.get("completion_tokens"))
    prompt_details = usage.get("prompt_tokens_details")
    output_details = usage.get("completion_tokens_details")
    cached = written = 0
    if isinstance(prompt_details, dict):
        cached = positive_count(prompt_details.get("cached_tokens"))
        written = positive_count(prompt_details.get("cache_write_tokens"))  # the Anthropic translation's
    reasoning = positive_count(output_details.get("reasoning_tokens")) if isinstance(output_details, dict) else 0
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": min(cached, prompt), "cache_write_tokens": min(written, prompt)},
        "output_tokens": output,
        "output_tokens_details": {"reasoning_tokens": min(reasoning, output)},
        "total_tokens": prompt + output,
    }


def response_shell(request, response_id, model):
    """The Response object in progress (no output yet) for the client's decoded ``request``."""
    shell = {
        "id": response_id,
        "object": "response",
        "created_at": int(time.time()),
        "status": "in_progress",
        "background": False,
        "error": None,
        "incomplete_details": None,
        "model": model,
        "output": [],
        "parallel_tool_calls": request.get("parallel_tool_calls", True),
        "previous_response_id": None,
        "store": False,
        "text": request.get("text") or {"format": {"type": "text"}},
        "tool_choice": request.get("tool_choice", "auto"),
        "tools": request.get("tools") or [],
        "truncation": "disabled",
        "usage": None,
    }
    for name in ECHOED:
        shell[name] = request.get(name)
    if shell["metadata"] is None:
        shell["metadata"] = {}
    return shell


def finished_status(finish_reason):
    """(status, incomplete_details) for how the choice ended."""
    reason = INCOMPLETE.get(finish_reason) if type(finish_reason) is str else None
    if reason is None:
        return "completed", None
    return "incomplete", {"reason": reason}
