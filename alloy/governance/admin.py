"""The admin API (behind the master key, see ``alloy.endpoints``): JSON in, JSON out.

    GET    /admin/keys[?team=..]          every key, or a team's (no secrets: a short prefix and the
                                          name), each with its "spend" as below (one indexed query a key)
    POST   /admin/keys                    create: {"name", "team", "models", "rpm", "tpm",
                                          "max_parallel", "budget", "budget_period", "expires",
                                          "metadata"} -> 201, the key with its secret, shown once
    GET    /admin/keys/{id or name}       one key, with "spend": its budget period, what the ledger
                                          records spent in it, what is left of the budget
    PATCH  /admin/keys/{id or name}       change any of the fields above (null removes a limit)
    DELETE /admin/keys/{id or name}       revoke (also POST .../revoke)
    POST   /admin/keys/{id or name}/rotate  a new secret, shown once; the old one stops working
    GET|POST /admin/teams, GET|PATCH|DELETE /admin/teams/{id or name}   the same for teams
    GET    /admin/usage?by=key|team|model|day|user|tags|status|metadata.KEY&since=ISO-or-7d&key=..&team=..   ledger totals

Bad input is a 400 naming the field (unknown fields, negative limits, absurd budgets, duplicate
names) and nothing is written; an unknown key or team is a 404. These calls write the SQLite file
on the event loop: they are rare and take a millisecond or two; the request path never does.
The worker that served the change reloads its keys at once, the others within ``sync_interval``.

Before any database exists (a gateway with a master key and no keys yet), ``before_database``
answers the same routes with the same handlers over an empty ``_NoDatabase``: reads list nothing
and create no file, bad input is refused with the same 400 (nothing created), and the first write
that would succeed creates the database, has the ``DatabaseWatch`` build governance now, and is
served by governance's handlers as if the gateway had started with the file. The other workers of
``--workers N`` find the file within ``sync_interval``, as they find one ``alloy keys create`` made.
"""

import json
import logging
import os
from urllib.parse import parse_qs, unquote

import orjson

from alloy.errors import AlloyError, InvalidRequest, MethodNotAllowed, NotFound
from alloy.governance.attribution import metadata_key
from alloy.governance.fields import FieldError, key_values, moment, public, team_values, with_spend
from alloy.governance.store import NotFoundError, Store, StoreError
from alloy.headers import JSON_HEADER
from alloy.prebuilt import Prebuilt

log = logging.getLogger("alloy.governance")
USAGE_GROUPS = ("key", "team", "model", "day", "user", "tags", "status")  # and metadata.KEY


def is_usage_group(by):
    """What ``alloy usage --by`` and ``/admin/usage?by=`` may group by."""
    return by in USAGE_GROUPS or metadata_key(by) is not None


def register(governance, routes):
    admin = Admin(governance)
    routes[b"/admin/keys"] = guarded(admin.keys)
    routes[b"/admin/teams"] = guarded(admin.teams)
    routes[b"/admin/usage"] = guarded(admin.usage)


def before_database(watch, request, path, query, connection):
    """An admin request while the gateway has no database: see the module's docstring."""
    handler = getattr(Admin(_NoDatabase()), path.split(b"/")[2].decode())  # keys, teams or usage
    if os.path.exists(watch.settings.path):  # made meanwhile (alloy keys create, another worker)
        return _with_governance(watch, request, path, query, connection)
    try:
        return handler(request, path, query, connection)
    except _NeedsDatabase:
        pass
    except AlloyError:
        raise
    except Exception as error:  # noqa: BLE001 - as guarded(): a 500 with a message, not a crash
        log.exception("governance: the admin request %s failed", path.decode("latin-1"))
        raise AlloyError(f"the admin request failed: {type(error).__name__}") from None
    try:
        Store(watch.settings.path).close()  # created and migrated; governance opens it again
    except Exception as error:  # noqa: BLE001 - a directory not writable, a full disk
        log.error("governance: cannot create the keys database %s: %s", watch.settings.path, error)
        raise AlloyError(f"the keys database {watch.settings.path} cannot be created: {type(error).__name__}") from None
    log.warning("governance: the admin API created the keys database %s", watch.settings.path)
    return _with_governance(watch, request, path, query, connection)


def _with_governance(watch, request, path, query, connection):
    if not watch.look():
        raise AlloyError(f"the keys database {watch.settings.path} cannot be opened (see the gateway's log)")
    routes = watch.pipeline.admin_routes
    for prefix, handler in routes.items():
        if path == prefix or path.startswith(prefix + b"/"):
            return handler(request, path, query, connection)
    raise NotFound(f"no route for {path.decode('latin-1')}")


class _NeedsDatabase(Exception):
    """A write that passed validation: now the database must exist."""


class _NoDatabase:
    """The store and ledger of a gateway without a database, as the admin handlers see them: no
    key, no team, no usage; a write that would succeed raises ``_NeedsDatabase``."""

    def __init__(self):
        self.store = self.ledger = self

    def flush(self):
        pass

    def keys(self):
        return []

    teams = keys

    def usage(self, by, since, key, team):
        if key is not None:
            self.key(key)
        if team is not None:
            self.team(team)
        return []

    def key(self, ref):
        raise NotFoundError(f"no key with the id or name {ref!r}")

    def team(self, ref):
        raise NotFoundError(f"no team with the id or name {ref!r}")

    def create_key(self, values):
        team = values.get("team")
        if team is not None:  # the store's own refusal: no team exists yet
            raise StoreError(f"no team named {team!r}: create it first (alloy teams create --name {team})", "team")
        raise _NeedsDatabase()

    def create_team(self, values):
        raise _NeedsDatabase()

    def update_key(self, ref, values):
        self.key(ref)

    def update_team(self, ref, values):
        self.team(ref)

    revoke_key = rotate_key = key
    delete_team = team


def guarded(handler):
    """An unexpected failure (a full disk, a locked file) is a 500 with a message, not a crash."""

    def handle(request, path, query, connection):
        try:
            return handler(request, path, query, connection)
        except AlloyError:
            raise
        except Exception as error:  # noqa: BLE001
            log.exception("governance: the admin request %s failed", path.decode("latin-1"))
            raise AlloyError(f"the admin request failed: {type(error).__name__}") from None

    return handle


def shown(store, row, kind):
    """One key or team (``kind``) as ``show`` and ``GET .../{ref}`` give it: its settings and its
    spend this budget period."""
    return with_spend(public(row), row["budget"], *store.period_spend(row, kind))


class Admin:
    def __init__(self, governance):
        self.governance = governance
        self.store = governance.store

    def keys(self, request, path, query, connection):
        ref, action = _parts(path, b"/admin/keys")
        method = request.method
        store = self.store
        if ref is None:
            if method == b"GET":
                team = _params(query, ("team",)).get("team")
                if team is not None:  # the keys of one team, named by its id or name
                    team = self._found(lambda: store.team(team))["name"]
                rows = [row for row in store.keys() if team is None or row["team"] == team]
                return _json(200, {"object": "list", "data": [shown(store, row, "key") for row in rows]})
            if method == b"POST":
                row, secret = self._write(lambda: store.create_key(key_values(_body(request), creating=True)))
                return _json(201, {**public(row), "key": secret})
            raise MethodNotAllowed("use GET or POST for /admin/keys", allow=b"GET, POST")
        if action is None:
            if method == b"GET":
                return _json(200, shown(store, self._found(lambda: store.key(ref)), "key"))
            if method in (b"PATCH", b"POST"):
                return _json(200, public(self._write(lambda: store.update_key(ref, key_values(_body(request), creating=False)))))
            if method == b"DELETE":
                return _json(200, public(self._write(lambda: store.revoke_key(ref))))
            raise MethodNotAllowed("use GET, PATCH or DELETE for /admin/keys/{key}", allow=b"GET, PATCH, DELETE")
        if method != b"POST":
            raise MethodNotAllowed(f"use POST for /admin/keys/{{key}}/{action}", allow=b"POST")
        if action == "rotate":
            row, secret = self._write(lambda: store.rotate_key(ref))
            return _json(200, {**public(row), "key": secret})
        if action == "revoke":
            return _json(200, public(self._write(lambda: store.revoke_key(ref))))
        raise NotFound(f"no admin action {action!r} (rotate, revoke)")

    def teams(self, request, path, query, connection):
        ref, action = _parts(path, b"/admin/teams")
        method = request.method
        store = self.store
        if action is not None:
            raise NotFound(f"no admin action {action!r} for teams")
        if ref is None:
            if method == b"GET":
                _params(query, ())
                return _json(200, {"object": "list", "data": [shown(store, row, "team") for row in store.teams()]})
            if method == b"POST":
                return _json(201, public(self._write(lambda: store.create_team(team_values(_body(request), creating=True)))))
            raise MethodNotAllowed("use GET or POST for /admin/teams", allow=b"GET, POST")
        if method == b"GET":
            return _json(200, shown(store, self._found(lambda: store.team(ref)), "team"))
        if method in (b"PATCH", b"POST"):
            return _json(200, public(self._write(lambda: store.update_team(ref, team_values(_body(request), creating=False)))))
        if method == b"DELETE":
            return _json(200, public(self._write(lambda: store.delete_team(ref))))
        raise MethodNotAllowed("use GET, PATCH or DELETE for /admin/teams/{team}", allow=b"GET, PATCH, DELETE")

    def usage(self, request, path, query, connection):
        if path != b"/admin/usage":
            raise NotFound(f"no route for {path.decode('latin-1')}")
        if request.method != b"GET":
            raise MethodNotAllowed("use GET for /admin/usage", allow=b"GET")
        params = _params(query, ("by", "since", "key", "team"))
        by = params.get("by", "key")
        if not is_usage_group(by):
            raise InvalidRequest(f"by: expected one of {', '.join(USAGE_GROUPS)} or metadata.KEY", param="by")
        since = None
        if "since" in params:
            since = since_time(params["since"])
        self.governance.ledger.flush()  # what has ended so far, as far as this worker knows
        rows = self._found(lambda: self.store.usage(by, since, params.get("key"), params.get("team")))
        return _json(200, {"object": "list", "by": by, "data": rows})

    def _write(self, change):
        result = self._found(change)
        self.governance.changed()
        return result

    def _found(self, read):
        try:
            return read()
        except FieldError as error:
            raise InvalidRequest(str(error), param=error.field) from None
        except NotFoundError as error:
            raise NotFound(str(error)) from None
        except StoreError as error:
            raise InvalidRequest(str(error), param=error.field) from None


def since_time(text):
    """``7d`` (that long ago) or an ISO 8601 time, as a wall-clock time."""
    try:
        return moment("since", text, ahead=False)
    except FieldError as error:
        raise InvalidRequest(str(error), param="since") from None


def _parts(path, prefix):
    """(reference, action) from /admin/keys/{ref}[/{action}], URL-decoded."""
    rest = path[len(prefix) :].strip(b"/")
    if not rest:
        return None, None
    pieces = rest.split(b"/")
    if len(pieces) > 2:
        raise NotFound(f"no route for {path.decode('latin-1')}")
    ref = unquote(pieces[0].decode("latin-1"))
    return ref, (pieces[1].decode("latin-1") if len(pieces) == 2 else None)


def _params(query, known):
    """The query's parameters (the last of a repeated one), refused when one is not ``known``: a
    filter the API ignored would list what the caller meant to leave out."""
    params = {name: values[-1] for name, values in parse_qs(query[1:].decode("latin-1")).items()} if query else {}
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise InvalidRequest(f"unknown parameter {unknown[0]!r} ({', '.join(known) or 'none are taken'})", param=unknown[0])
    return params


def _body(request):
    try:
        document = orjson.loads(request.body or b"{}")
    except orjson.JSONDecodeError:
        raise InvalidRequest("the body is not valid JSON") from None
    if b'"' in (request.body or b""):  # a name given twice ({"rpm": 5, "rpm": 500}): which one was meant?
        try:
            json.loads(request.body, object_pairs_hook=_once_each)
        except RecursionError:  # nested deeper than Python's parser goes (orjson's limit is higher)
            raise InvalidRequest("the body is nested too deeply") from None
    return document


def _once_each(pairs):
    """A JSON object's fields, refused when one is named twice (orjson keeps the last silently)."""
    seen = set()
    for name, _ in pairs:
        if name in seen:
            raise InvalidRequest(f"{name!r} is given twice", param=name)
        seen.add(name)
    return None  # the document itself is orjson's: this pass only looks


# An admin answer may hold a new key's secret (shown that once) or spend: no cache keeps a copy.
ADMIN_HEADERS = JSON_HEADER + b"cache-control: no-store\r\n"


def _json(status, document):
    return Prebuilt(status, orjson.dumps(document), ADMIN_HEADERS)
