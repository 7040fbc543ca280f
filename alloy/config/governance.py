"""The ``[governance]`` section: virtual keys, teams, limits, budgets and the spend ledger
(``alloy.governance``). Owned by that feature; every key it reads is documented here.

    [governance]
    path = "/var/lib/alloy/alloy.db"   # the SQLite file of keys, teams and the ledger (see below)
    sync_interval = 0.5                # seconds between two reloads of the keys (revocation bound)
    flush_interval = 0.5               # seconds between two ledger writes (the kill -9 window)
    redis_url = "redis://10.0.0.5:6379/0"  # share limits and budgets between gateways (see below)
    redis_timeout = 0.25               # seconds Redis has to answer before the local limits decide
    fail_mode = "open"                 # Redis unreachable: "open" decides with this server's own
                                       # counters, "closed" refuses keyed requests with 503
    inflight_lease = 30                # seconds a request in flight holds its Redis slot unless
                                       # renewed: a lost release frees itself within this time
    drain_timeout = 5                  # seconds a stream its client left is read on for its usage
                                       # (0: not at all); past it, the call is charged its reservation

    [governance.prices."my-model"]     # USD per million tokens, overriding the shipped table
    input = 1.0
    output = 2.0
    cached_input = 0.5

Where the database lives when ``path`` is not given: ``$ALLOY_DB``, else
``$XDG_DATA_HOME/alloy/alloy.db``, else ``~/.local/share/alloy/alloy.db``; the same rule in
``alloy keys`` and in the gateway, so ``alloy keys create`` then ``alloy`` work without a file.
Keys apply when that database exists at start, or when a ``[governance]`` section is present (the
file is then created).
"""

import os
from dataclasses import dataclass, field

from alloy.config.reading import ConfigError, _Section

PRICE_FIELDS = ("input", "output", "cached_input")


@dataclass(frozen=True)
class GovernanceSettings:
    path: str | None = None  # None: the default location (default_database_path)
    configured: bool = False  # a [governance] section is present: keys apply even before the first
    sync_interval: float = 0.5
    flush_interval: float = 0.5
    redis_url: str | None = None
    redis_timeout: float = 0.25
    fail_mode: str = "open"
    inflight_lease: float = 30.0
    drain_timeout: float = 5.0
    prices: tuple = ()  # ((model, (input, output, cached_input)), ...) USD per million tokens
    # Not a configuration key: with --workers N the supervisor creates the shared counters file
    # (rate limits, in-flight counts, spend) every worker maps, so limits hold for the whole server;
    # not compared, so a reload (which reads the file without it) sees no change to [governance].
    shared_path: str | None = field(default=None, repr=False, compare=False)


def default_database_path(env=None):
    """``$ALLOY_DB``, else the XDG data directory's ``alloy/alloy.db``."""
    env = os.environ if env is None else env
    if env.get("ALLOY_DB"):
        return env["ALLOY_DB"]
    data_home = env.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(data_home, "alloy", "alloy.db")


def database_path_in(source, document, env=None):
    """The database file a configuration document's ``[governance]`` names (the default when it
    names none), read without the rest of the document: the CLI that manages keys needs neither the
    providers nor their secrets."""
    return _database_path(_Section(source, "governance", document.get("governance", {})), env)


def _database_path(section, env):
    path = section.get("path", str, None)
    if path is not None and not path.strip():
        section._fail("path", "must not be empty")
    return path or default_database_path(env)


def _load_governance(source, table, env):
    section = _Section(source, "governance", table)
    settings = GovernanceSettings(
        path=_database_path(section, env),
        configured=bool(table),
        sync_interval=section.positive("sync_interval", float, 0.5),
        flush_interval=section.positive("flush_interval", float, 0.5),
        redis_url=_redis_url(section),
        redis_timeout=section.positive("redis_timeout", float, 0.25),
        fail_mode=section.one_of("fail_mode", ("open", "closed"), "open"),
        inflight_lease=section.positive("inflight_lease", float, 30.0),
        drain_timeout=section.at_least_zero("drain_timeout", float, 5.0),
        prices=_prices(source, section.get("prices", dict, {})),
    )
    section.finish()
    return settings


def _redis_url(section):
    url = section.get("redis_url", str, None)
    if url is not None and not url.startswith(("redis://", "rediss://", "unix://")):
        section._fail("redis_url", "expected redis://HOST:PORT/DB, rediss://... or unix://PATH")
    return url or None


def _prices(source, table):
    prices = []
    for model, entry in table.items():
        where = f"governance.prices.{model}"
        if not isinstance(entry, dict):
            raise ConfigError(f"{source}: {where}: expected a table with {', '.join(PRICE_FIELDS)}")
        unknown = sorted(set(entry) - set(PRICE_FIELDS))
        if unknown:
            raise ConfigError(f"{source}: {where}.{unknown[0]}: unknown key")
        values = []
        for name in PRICE_FIELDS:
            value = entry.get(name, 0.0 if name != "cached_input" else entry.get("input", 0.0))
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1e6:
                raise ConfigError(f"{source}: {where}.{name}: expected USD per million tokens, 0 to 1e6")
            values.append(float(value))
        prices.append((model, tuple(values)))
    return tuple(prices)
