"""The ``[log]`` section: the access log, one line per request (``alloy.observability.access_log``).

    [log]
    access = true           # false: no access log
    format = "json"         # "json" (one object per line) or "text" (key=value pairs)
    path = "stderr"         # "stderr" (default), "stdout", or a file (appended to, reopened when
                            # it is moved or removed, so logrotate needs no signal)
    sample = 1.0            # the share of requests logged, 0 to 1

Gateway events (started, stopped, configuration loaded, breakers opening and closing) go through
Python's ``logging`` at the level of ``--log-level``; the access log does not depend on it.
"""

from dataclasses import dataclass

from alloy.config.reading import _Section

LOG_FORMATS = ("json", "text")


@dataclass(frozen=True)
class LogSettings:
    access: bool = True
    format: str = "json"
    path: str = "stderr"  # "stderr", "stdout" or a file path
    sample: float = 1.0


def _load_log(source, table):
    section = _Section(source, "log", table)
    path = section.get("path", str, "stderr")
    if not path:
        section._fail("path", "expected a file path, 'stderr' or 'stdout'")
    sample = section.get("sample", float, 1.0)
    if not 0.0 <= sample <= 1.0:
        section._fail("sample", "expected a number between 0 and 1")
    settings = LogSettings(
        access=section.get("access", bool, True),
        format=section.one_of("format", LOG_FORMATS, "json"),
        path=path,
        sample=sample,
    )
    section.finish()
    return settings
