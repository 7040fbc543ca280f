"""The ``[passthrough]`` section: which other ``/v1/`` paths reach the default provider, read into
(method, path pattern) rules. The default list and the parsing of a rule are the allow-list's own,
in ``alloy.passthrough`` (a different module from this one, which only reads the section).
"""

from dataclasses import dataclass

from alloy.config.reading import _Section
from alloy.passthrough import DEFAULT_ALLOW, parse_allow_rule


@dataclass(frozen=True)
class PassthroughSettings:
    """Which ``/v1/`` paths other than the model endpoints reach the default provider, as
    (method, path pattern) rules; ``*`` in a pattern stands for exactly one path segment."""

    allow: tuple[tuple[str, str], ...] = DEFAULT_ALLOW


def _load_passthrough(source, table):
    section = _Section(source, "passthrough", table)
    rules = section.get("allow", list, None)
    settings = PassthroughSettings()
    if rules is not None:
        try:
            settings = PassthroughSettings(allow=tuple(parse_allow_rule(rule) for rule in rules))
        except ValueError as problem:
            section._fail("allow", str(problem))
    section.finish()
    return settings
