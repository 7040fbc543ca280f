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
alone, and pays nothing per request. ``DatabaseWatch`` then looks for the file off the request path
(one ``os.stat`` every ``sync_interval``, and at each reload): once ``alloy keys create`` made it,
governance is built on the pipeline serving at that moment, exactly as if the gateway had started
with it, and the watch stops. Meanwhile the watch answers the admin API itself (``ADMIN_PATHS``,
behind the master key as always; ``alloy.governance.admin.before_database``): reads find nothing
and create nothing, and the first write that passes validation creates the database, has the
watch build governance at once and is then served by governance's own handlers, so the first key
can be made over HTTP too.
"""

import logging
import os

log = logging.getLogger("alloy.governance")
ADMIN_PATHS = (b"/admin/keys", b"/admin/teams", b"/admin/usage")  # what governance registers


def applies(settings):
    """Keys apply: a [governance] section is configured, or the database exists."""
    return settings.configured or os.path.exists(settings.path)


def governance_for(config, pipeline):
    """The governance of this gateway, or None (the master key alone)."""
    settings = config.governance
    if not applies(settings):
        return None
    try:
        return _opened(settings, pipeline)
    except _open_errors() as error:  # a clear refusal to start, not a traceback
        raise SystemExit(f"alloy: cannot open the keys database {settings.path}: {error}") from None


def _opened(settings, pipeline):
    return gate_module().Governance(settings, pipeline)


def gate_module():
    """The gate (imported only when keys apply): compiled from ``gate.py`` with the declarations of
    ``_gate.pxd`` when the core is compiled, else ``gate.py`` itself, its pure twin."""
    from alloy.core import IMPLEMENTATION

    if IMPLEMENTATION == "compiled":
        try:
            from alloy.governance import _gate

            return _gate
        except ImportError:  # built without it (an older build tree): the twin serves
            pass
    from alloy.governance import gate

    return gate


def _open_errors():
    import sqlite3

    from alloy.governance.store import StoreError

    return (sqlite3.Error, OSError, StoreError)


class DatabaseWatch:
    """A gateway started without keys looks for the database every ``sync_interval``: the first
    key created while it serves applies within that interval, no restart needed."""

    def __init__(self, settings, pipeline):
        self.settings = settings
        self.pipeline = pipeline  # the one serving: a reload hands the watch to its new pipeline
        self.failed = False  # an open that failed was logged (once)
        self.timer = pipeline.loop.call_later(settings.sync_interval, self._tick)
        for prefix in ADMIN_PATHS:  # replaced by governance's own handlers once it is built
            pipeline.admin_routes.setdefault(prefix, self.admin)

    def admin(self, request, path, query, connection):
        """The admin API before the database exists (the module, and sqlite3, load only now)."""
        from alloy.governance.admin import before_database

        return before_database(self, request, path, query, connection)

    def _tick(self):
        self.timer = None
        if not self.look():
            self.timer = self.pipeline.loop.call_later(self.settings.sync_interval, self._tick)

    def look(self):
        """Build governance now if the database exists; True once governance applies."""
        pipeline = self.pipeline
        if pipeline.governance is not None:
            return True
        if not os.path.exists(self.settings.path):
            return False
        try:
            pipeline.governance = _opened(self.settings, pipeline)
        except _open_errors() as error:  # a file half made, unreadable: try again next time
            if not self.failed:
                log.error("governance: cannot open the keys database %s yet: %s", self.settings.path, error)
                self.failed = True
            return False
        log.warning("governance: keys apply from now on (%s appeared)", self.settings.path)
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        return True


def watch_for_database(config, pipeline):
    """Without governance at start (no section, no file): a ``DatabaseWatch``, or None without a
    loop to run it on."""
    if pipeline.loop is None:
        return None
    return DatabaseWatch(config.governance, pipeline)
