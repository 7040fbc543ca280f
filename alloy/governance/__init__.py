"""Governance: virtual keys, teams, rate limits, budgets and the spend ledger.

Where it plugs into the request path (``alloy.pipeline``):

    authenticate  ``Governance.authenticate(request)`` -> the key identity (None: the master key),
                  or raises ``AuthenticationFailed``; it checks the master key too
    admit         ``Governance.admit(call)`` refuses with an ``AlloyError`` (429...) before anything
                  goes upstream; lines it appends to ``call.id_line`` go on every answer of the call
    account       a finish listener it adds to ``pipeline.listeners`` reads ``call.usage``, the
                  status and the clock reads, and releases what ``admit`` reserved
    admin API     handlers it puts in ``pipeline.admin_routes`` (``/admin/keys``, ``/admin/teams``,
                  ``/admin/usage``)

The modules, each with one job: ``store`` (the SQLite file), ``fields`` (what a key or team may
be given), ``keyring`` (the keys in memory, reloaded when they change), ``counters`` (the live
limits and spend, shared by the workers of a server), ``gate`` (the three stages above),
``prices`` and ``prices.json`` (what a request cost), ``ledger`` (rows written off the request
path), ``admin`` (the HTTP API) and ``commands`` (``alloy keys``, ``alloy teams``, ``alloy usage``).

``governance_for`` returns None when no ``[governance]`` section is configured and the database
does not exist (no key was ever created): the gateway then behaves exactly as with the master key
alone, and pays nothing.
"""

import os


def applies(settings):
    """Keys apply: a [governance] section is configured, or the database exists."""
    return settings.configured or os.path.exists(settings.path)


def governance_for(config, pipeline):
    """The governance of this gateway, or None (the master key alone)."""
    settings = config.governance
    if not applies(settings):
        return None
    import sqlite3

    from alloy.governance.gate import Governance  # imported only when keys apply
    from alloy.governance.store import StoreError

    try:
        return Governance(settings, pipeline)
    except (sqlite3.Error, OSError, StoreError) as error:  # a clear refusal to start, not a traceback
        raise SystemExit(f"alloy: cannot open the keys database {settings.path}: {error}") from None
