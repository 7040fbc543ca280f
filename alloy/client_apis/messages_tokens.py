"""A tokenizer-free estimate of a request's input tokens, for ``/v1/messages/count_tokens``.

When ``count_tokens`` is routed to Anthropic, Anthropic counts. For any other model there is no
counting endpoint to ask and no tokenizer to download (models differ, and some tokenizers are not
public), so the gateway answers an estimate of the translated OpenAI request, built from the
usual rules of thumb:

    text                ASCII characters / 4 (English prose and code run 3.5 to 4.5 characters a
                        token) plus 1 token per other character (a CJK character is about one token;
                        accented Latin is counted high), rounded up per string. Counted: system and
                        message text, tool call names and arguments, tool results, and each tool's
                        name, description and JSON schema as serialised
    per message         4 tokens (role and separators)
    tools               346 tokens once when any tool is given: the tool-use system prompt
                        Anthropic documents for its current models (a fair size for the instructions
                        any provider adds around tool definitions)
    image               1,600 tokens each: Anthropic bills about width * height / 750 and scales
                        larger images down to about 1.15 megapixels, so this is the usual ceiling
    PDF                 3,000 tokens a page (Anthropic documents 1,500 to 3,000 for a page's text,
                        and a page image besides); pages counted by their ``/Type /Page`` objects,
                        at least one

An estimate errs high rather than low on purpose: clients use the count to decide when a
conversation must be compacted, and overflowing the context window is the worse mistake. Expect
within about 20% for prose and code; it is not a bill.
"""

import base64
import binascii
import math
import re

import orjson

CHARS_PER_TOKEN = 4
MESSAGE_OVERHEAD = 4
TOOLS_OVERHEAD = 346
IMAGE_TOKENS = 1600
PDF_PAGE_TOKENS = 3000
PAGE_OBJECT = re.compile(rb"/Type\s*/Page(?![a-zA-Z])")


def text_tokens(text):
    if not text:
        return 0
    if text.isascii():
        return math.ceil(len(text) / CHARS_PER_TOKEN)
    ascii_chars = len(text.encode("ascii", "ignore"))
    return math.ceil(ascii_chars / CHARS_PER_TOKEN) + len(text) - ascii_chars


def pdf_pages(data_url):
    """Pages of a base64 PDF data URL (at least 1, also when it does not decode)."""
    try:
        data = base64.b64decode(data_url.partition(",")[2], validate=False)
    except (binascii.Error, ValueError):
        return 1
    return max(1, len(PAGE_OBJECT.findall(data)))


def part_tokens(part):
    kind = part.get("type")
    if kind == "text":
        return text_tokens(part.get("text"))
    if kind == "image_url":
        return IMAGE_TOKENS
    if kind == "file":
        return PDF_PAGE_TOKENS * pdf_pages((part.get("file") or {}).get("file_data") or "")
    return 0


def content_tokens(content):
    if isinstance(content, str):
        return text_tokens(content)
    return sum(part_tokens(part) for part in content or ())


def message_tokens(message):
    tokens = MESSAGE_OVERHEAD + content_tokens(message.get("content"))
    for call in message.get("tool_calls") or ():
        function = call["function"]
        tokens += text_tokens(function["name"]) + text_tokens(function["arguments"])
    return tokens


def estimate_chat_tokens(chat):
    """The estimated input tokens of an OpenAI chat request made by ``chat_request_from_messages``."""
    tokens = sum(message_tokens(message) for message in chat["messages"])
    tools = chat.get("tools")
    if tools:
        tokens += TOOLS_OVERHEAD + sum(text_tokens(orjson.dumps(tool["function"]).decode()) for tool in tools)
    return max(1, tokens)
