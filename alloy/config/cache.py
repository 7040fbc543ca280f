"""The ``[cache]`` section: the response cache (``alloy.cache``). Owned by that feature; every key it
reads is documented here.
"""

from dataclasses import dataclass

from alloy.config.reading import _Section


@dataclass(frozen=True)
class CacheSettings:
    enabled: bool = False


def _load_cache(source, table, env):
    section = _Section(source, "cache", table)
    settings = CacheSettings(enabled=section.get("enabled", bool, False))
    section.finish()
    return settings
