"""The access log: one line per request, written off the request path.

``AccessLog.record`` is a finish listener (``Pipeline.listeners``): it copies what the line needs out
of the ended call into a tuple appended to a list, nothing more. Once a second (and at shutdown)
``flush`` turns the list into lines (JSON objects, or ``key=value`` text) and hands them, as one
block of bytes, to a ``LogWriter``, which writes from a thread of its own (``alloy.observability.
handoff``), so a slow disk, a full disk or a stderr nobody reads never blocks the event loop. What
the writer cannot take (more than ``MAX_PENDING_BYTES`` waiting, or a write that fails) is dropped
and counted (``alloy_access_log_dropped_total``), never retried against a request.

A line's fields (absent when they do not apply):

    time            when the answer ended, UTC, ISO 8601 with microseconds
    request_id      the x-request-id the answer carried
    client          the client's address and port
    key             the name (or id) of the virtual key used, once keys exist: never a key itself
    method, path    the request line's method and normalized path (never the query string)
    model           the model the client asked for
    served_model    the model the last attempt asked the upstream for
    provider        the provider of the last attempt
    status          the status the client got (0: it left before any answer)
    attempts        upstream attempts made
    stream          the client asked for a stream
    bytes_in        the request body's size
    bytes_out       the answer body's size as the client received it (0 for Alloy's own errors)
    ttfb_ms         upstream time to first byte of the last attempt
    ttft_ms         a stream's time to its first event at the client (time to first token)
    duration_ms     arrival to the end of the answer
    overhead_us     the gateway's own time (see alloy.observability.metrics), first attempts only
    prompt_tokens, completion_tokens   from the answer's usage
    error, error_code                  Alloy's own error, when that was the answer (OpenAI type, code)
"""

import logging
import os
import stat
import sys
import time
from alloy.chance import random

import orjson

from alloy.core import access_json_line, untracked
from alloy.observability.handoff import Handoff
from alloy.usage import reported_counts

FLUSH_LINES = 256  # a flush comes sooner when this many lines wait: the loop pauses ~0.5 ms, not 20
MAX_PENDING_BYTES = 8 * 1024 * 1024  # lines waiting for the writer; past this they are dropped
PIPE_CHUNK = 4096  # PIPE_BUF: a write this small to a pipe is never interleaved with another's
# A client's path is the one field of a line it can make long (the model, the request id and the
# rest are bounded): cut past this, every line stays under PIPE_CHUNK, so workers sharing a pipe
# never interleave inside one (a path of quotes doubles when JSON escapes it).
MAX_LOGGED_PATH = 1024

log = logging.getLogger("alloy")


class AccessLog:
    def __init__(self, settings, writer, loop=None):
        self.loop = loop
        self.sample = settings.sample
        self.text = settings.format == "text"
        self.writer = writer
        self.entries = []

    @property
    def lines(self):
        return self.writer.written

    @property
    def dropped(self):
        return self.writer.dropped

    # --- the finish listener: copy, append ---------------------------------------------------------

    def record(self, call):
        if self.sample < 1.0 and random() >= self.sample:
            return
        try:  # read once per connection (a Messages call's connection asks the client's)
            peer = call.connection.peer_address()
        except Exception:  # noqa: BLE001 - a transport gone or of another kind: no address then
            peer = None
        deployment = call.deployment
        scan = call.scan
        key = call.key
        error = call.error
        usage = call.usage
        path = call.path
        if len(path) > MAX_LOGGED_PATH:
            path = _cut(path)
        entries = self.entries
        if len(entries) == FLUSH_LINES and self.loop is not None:
            self.loop.call_soon(self.flush)  # formatted in slices, between other callbacks
        # Only strings, numbers, bytes and None (and tuples of them) in an entry: the core takes
        # it out of the collector's sight at once (untracked), so the lines waiting for a flush
        # cost no collection anything.
        entries.append(
            untracked((
                call.ended_at, call.id_line, peer, None if key is None else _key_name(key),
                call.request.method, path,
                None if scan is None else scan.model, None if scan is None else scan.stream,
                None if deployment is None else (deployment.upstream_model or call.model_name),
                None if deployment is None else deployment.provider.name,
                call.status, call.count, len(call.request.body_buffer),
                call.arrived, call.sent_at, call.head_at,
                None if error is None else (error.type, error.code), None if usage is None else reported_counts(usage),
                call.bytes_out, call.first_event_at,
            ))
        )  # fmt: skip

    def refused(self, request, path, status, error, connection, id_line=None, bytes_out=0):
        """A ``/v1/`` request answered by Alloy before any call was made (401, 404, 400..., or its
        own answer: the model listing, a token count); ``id_line``: the x-request-id line of its
        answer; ``bytes_out``: its body's size."""
        if self.sample < 1.0 and random() >= self.sample:
            return
        try:
            peer = connection.peer_address()
        except Exception:  # noqa: BLE001
            peer = None
        now = time.monotonic()
        method, size = (None, 0) if request is None else (request.method, len(request.body_buffer))  # None: not parsed
        if path is not None and len(path) > MAX_LOGGED_PATH:
            path = _cut(path)
        # A call refused by admission (a key's limit, budget or models) names its key and model.
        call = getattr(error, "call", None)
        key = None if call is None or call.key is None else _key_name(call.key)
        scan = None if call is None else call.scan
        model, stream = (getattr(error, "model", None), None) if scan is None else (scan.model, scan.stream)
        self.entries.append(
            (now, id_line, peer, key, method, path, model, stream, None, None, status, 0, size,
             None, 0.0, 0.0, None if error is None else (error.type, error.code), None, bytes_out, 0.0)
        )  # fmt: skip

    # --- once a second and at shutdown --------------------------------------------------------------

    def flush(self):
        entries = self.entries
        if not entries:
            return
        self.entries = []
        offset = time.time() - time.monotonic()  # monotonic clock reads -> wall-clock time
        # JSON lines are the core's (the same bytes in both twins as orjson's dump of the fields).
        line = text_line if self.text else access_json_line
        try:
            block = b"".join([line(entry, offset) for entry in entries])
        except Exception:  # noqa: BLE001 - a line that cannot be formatted must not stop the gateway
            self.writer.drop(len(entries))
            return
        self.writer.submit(block, len(entries))

    def close(self, timeout=2.0):
        self.flush()
        self.writer.close(timeout)


def _cut(path):
    return path[:MAX_LOGGED_PATH] + b"..."


def _key_name(key):
    """What the line says of a virtual key: its name, else its id (never the key itself)."""
    name = getattr(key, "name", None) or getattr(key, "id", None)
    return name if type(name) is str else None


def text_line(entry, offset):
    """``time method path status key=value ...``: logfmt, values quoted when they hold a space, a
    quote, an equals sign or a control character. (The fields are read back from the JSON line:
    one definition of what a line says; the text format is the rarer one.)"""
    out = orjson.loads(access_json_line(entry, offset))
    head = f'{out.pop("time")} {out.pop("method", "-")} {_text_value(out.pop("path", "-"))} {out.pop("status")}'
    rest = " ".join(f"{name}={_text_value(value)}" for name, value in out.items())
    return (head + " " + rest + "\n").encode("utf-8", "replace")


def _text_value(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    if not text or any(c in text for c in ' "=\\') or not (text.isascii() and text.isprintable()):
        # One pass, each character once: escaping the quotes first and then the whole text again
        # would double the backslash before a quote, and the quote would end the value (a client's
        # model name could then add fields of its own to the line).
        return '"' + "".join(_text_char(c) for c in text) + '"'
    return text


def _text_char(c):
    if c == "\\" or c == '"':
        return "\\" + c
    return c if " " <= c <= "~" else c.encode("unicode_escape").decode("ascii")


class LogWriter:
    """Writes blocks of lines to stderr, stdout or a file, from a thread of its own.

    A file is opened for appending and reopened when its path no longer names it (moved or removed
    by logrotate, or by hand): checked before each block, which costs a ``stat`` a second. A file
    that cannot be opened, a full disk, a closed stderr: the block is dropped and counted, and the
    next block tries again."""

    def __init__(self, target):
        self.target = target
        self.fd = None
        self.inode = None
        self.regular = False
        self.failing = False  # the last write failed: said once in the gateway's log until one succeeds
        self.handoff = Handoff("alloy-access-log", self._write, max_bytes=MAX_PENDING_BYTES, on_stop=self._close_file)
        self.submit = self.handoff.submit  # (block, lines), from the event loop
        self.drop = self.handoff.drop
        self.close = self.handoff.close  # writes what is pending (for up to a timeout), then stops

    @property
    def written(self):
        """Lines written."""
        return self.handoff.delivered

    @property
    def dropped(self):
        """Lines dropped: the queue was full, or the write failed."""
        return self.handoff.dropped

    # --- the writer thread ----------------------------------------------------------------------------

    def _close_file(self):
        if self.fd is not None and self.target not in ("stderr", "stdout"):
            try:
                os.close(self.fd)
            except OSError:
                pass

    def check(self):
        """At start: a file that cannot be opened is said at once, not at the first request (one
        that can is kept open for the writer)."""
        try:
            self._descriptor()
        except (OSError, ValueError) as error:
            self._failed(error)

    def _write(self, block):
        try:
            fd = self._descriptor()
            if self.regular:
                _write_all(fd, block)
            else:  # a pipe or a terminal: whole lines, at most PIPE_BUF at a time
                for piece in _pieces(block):
                    _write_all(fd, piece)
        except (OSError, ValueError) as error:
            self._failed(error)
            return False
        if self.failing:
            self.failing = False
            log.warning("the access log is written to %s again", self.target)
        return True

    def _failed(self, error):
        if not self.failing:
            self.failing = True
            reason = error.strerror if isinstance(error, OSError) and error.strerror else error
            log.warning(
                "the access log cannot be written to %s (%s): its lines are dropped (and counted in "
                "alloy_access_log_dropped_total) until it can", self.target, reason,
            )  # fmt: skip

    def _descriptor(self):
        target = self.target
        if target in ("stderr", "stdout"):
            if self.fd is None:
                stream = sys.stderr if target == "stderr" else sys.stdout
                try:
                    self.fd = stream.fileno()
                    self.regular = stat.S_ISREG(os.fstat(self.fd).st_mode)
                except AttributeError:
                    raise ValueError(f"no {target} to write to") from None
            return self.fd
        try:
            inode = os.stat(target).st_ino
        except OSError:
            inode = None
        if self.fd is not None and inode != self.inode:  # moved or removed: start a new file
            try:
                os.close(self.fd)
            except OSError:
                pass
            self.fd = None
        if self.fd is None:
            try:
                self.fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
                info = os.fstat(self.fd)
            except OSError:
                self.fd = None
                raise
            self.inode = info.st_ino
            self.regular = stat.S_ISREG(info.st_mode)
        return self.fd


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _pieces(block):
    """``block`` cut at line ends into pieces of at most ``PIPE_CHUNK`` bytes (a longer line alone)."""
    start = 0
    size = len(block)
    while start < size:
        end = start + PIPE_CHUNK
        if end < size:
            cut = block.rfind(b"\n", start, end)
            end = cut + 1 if cut >= start else block.find(b"\n", end) + 1 or size
        yield block[start:end]
        start = end
