"""The ``[governance]`` section: virtual keys, teams, limits, budgets and the spend ledger
(``alloy.governance``). Owned by that feature; every key it reads is documented here.
"""

from dataclasses import dataclass

from alloy.config.reading import _Section


@dataclass(frozen=True)
class GovernanceSettings:
    pass


def _load_governance(source, table, env):
    section = _Section(source, "governance", table)
    settings = GovernanceSettings()
    section.finish()
    return settings
