"""The keys and teams a gateway knows, in memory: what ``authenticate`` and ``admit`` read.

``Keyring.reload`` reads every key and team from the store into ``KeyIdentity`` objects indexed
by the hash of their secret. The gateway calls ``refresh`` every ``sync_interval`` (0.5 s by
default): it reads one number (``keys_version``, bumped by every change) and reloads only when it
moved, so a revoked, rotated or changed key takes effect in every worker within that interval plus
the reload itself. A reload reads every row but rebuilds only the keys and teams whose stored row
changed (and the keys of a changed team): the rest keep their objects, so a change costs a few
milliseconds for thousands of keys on each worker's loop. The request path never touches the
database.

A secret that matched is remembered as it was sent (``by_secret``, and the whole Authorization
header that carried it in ``by_header``; at most ``MAX_REMEMBERED`` each, forgotten at every
reload), so a client's later requests are found with one dict lookup instead of a SHA-256 each:
the gateway holds the secrets of recent requests in memory anyway, and only secrets of known keys
are kept, so a flood of wrong keys fills nothing.

A ``Scope`` is what a key or a team limits (models, rpm, tpm, in flight, budget) and where its live
counters are (its slot in ``alloy.governance.counters``). A key's ``scopes`` are its own and its
team's: every limit of both applies, so the tighter one decides.
"""

import hashlib
import logging
import time

from alloy.governance.fields import period_bounds
from alloy.governance.identity import KeyIdentity, ModelRule
from alloy.governance.prices import SPEND_UNIT
from alloy.governance.store import key_fields, team_fields

log = logging.getLogger("alloy.governance")
MAX_REMEMBERED = 10_000  # secrets found by their hash, kept for a lookup without hashing


class Scope:
    __slots__ = ("id", "name", "kind", "models", "rpm", "tpm", "max_parallel", "budget", "period", "anchor", "slot")

    def __init__(self, row, kind, table):
        self.id = row["id"]
        self.name = row["name"]
        self.kind = kind  # "key" or "team": what the refusal message names
        self.models = ModelRule(row["models"]) if row["models"] else None
        self.rpm = row["rpm"] or 0
        self.tpm = row["tpm"] or 0
        self.max_parallel = row["max_parallel"] or 0
        self.budget = int(row["budget"] * SPEND_UNIT) if row["budget"] else 0  # nano-USD
        self.period = row["budget_period"] or 0
        self.anchor = row["created_at"]  # budget periods are counted from here
        self.slot = table.slot_of(self.id)

    def period_index(self, now):
        return int((now - self.anchor) // self.period) if self.period else 0

    def period_start(self, now):
        return period_bounds(self.anchor, self.period, now)[0]


class Keyring:
    def __init__(self, store, table):
        self.store = store
        self.table = table
        self.by_hash = {}
        self.by_secret = {}  # a secret as sent -> its identity (see the module's docstring)
        self.by_header = {}  # an Authorization header's whole value ("Bearer sk-alloy-...") -> the same
        self.teams = {}  # team id -> (its stored row, its Scope), as of the last reload
        self.keys = {}  # key id -> (its stored row, its team's Scope or None, its KeyIdentity)
        self.version = None
        # Keys in the database at the last reload, revoked and expired ones too: once there was a
        # key, a request without one is refused (revoking a leaked last key must not open the door).
        self.created = 0

    def refresh(self):
        """Reload when a key or a team changed since the last reload."""
        version = self.store.keys_version()
        if version != self.version:
            self.reload(version)

    def reload(self, version=None):
        version = self.store.keys_version() if version is None else version
        now = time.time()
        teams, by_name = {}, {}
        for stored in self.store.stored_teams():
            known = self.teams.get(stored["id"])
            if known is not None and known[0] == stored:
                scope = known[1]  # unchanged since the last reload
            else:
                scope = Scope(team_fields(stored), "team", self.table)
                self._load_spend(scope, now)
            teams[stored["id"]] = (stored, scope)
            by_name[stored["name"]] = scope
        keys, by_hash = {}, {}
        for stored in self.store.stored_keys():
            team = by_name.get(stored["team"])
            known = self.keys.get(stored["id"])
            if known is not None and known[0] == stored and known[1] is team:
                identity = known[2]  # neither the key nor its team changed
            else:
                identity = self._identity(key_fields(stored), team, now)
            keys[stored["id"]] = (stored, team, identity)
            by_hash[stored["hash"]] = identity
        self.teams, self.keys = teams, keys
        self.by_hash, self.version, self.created = by_hash, version, len(by_hash)
        self.by_secret = {}  # a revoked or rotated secret must be hashed (and missed) again
        self.by_header = {}

    def _identity(self, row, team, now):
        scope = Scope(row, "key", self.table)
        self._load_spend(scope, now)
        identity = KeyIdentity(row, (scope,) if team is None else (scope, team))
        if any(s.slot is None for s in identity.scopes):
            log.error("governance: the counters table is full; key %s is refused", row["name"])
            identity.revoked = True
        return identity

    def learn(self, secret):
        """The identity of a secret not seen since the last reload (None: no such key), found by
        its hash and remembered."""
        identity = self.by_hash.get(hashlib.sha256(secret).digest())
        if identity is not None:
            if len(self.by_secret) >= MAX_REMEMBERED:
                self.by_secret.clear()
            self.by_secret[secret] = identity
        return identity

    def remember_header(self, value, identity):
        """The Authorization header that carried a known key's secret, as it was sent: the next
        request with it is found without cutting the secret out of it."""
        if len(self.by_header) >= MAX_REMEMBERED:
            self.by_header.clear()
        self.by_header[value] = identity

    def _load_spend(self, scope, now):
        """At a scope's first sight since the counters were created, and when its budget period
        changed length, its spend this period comes from the ledger (what earlier runs spent, what
        the new period already holds: the period numbers of two lengths do not compare); afterwards
        the counters are the truth. The slot's ``loaded`` is the period length it was loaded for,
        plus one, so of several workers reloading the same change only the first reads the ledger."""
        if scope.slot is None:
            return
        table = self.table
        loaded_for = int(scope.period) + 1
        if table.read(scope.slot)[8] == loaded_for:
            return
        spent = ledger_spend(self.store, scope, now)
        table.lock()
        try:
            values = list(table.read(scope.slot))
            if values[8] != loaded_for:
                values[6], values[7], values[8] = scope.period_index(now), spent, loaded_for
                table.write(scope.slot, values)
        finally:
            table.unlock()


def ledger_spend(store, scope, now):
    """What the ledger records a key or team spent in its current budget period, in nano-USD: the
    local counters start from it, and so does a Redis that lost its spend (``alloy.governance.shared``)."""
    column, value = ("key_id", scope.id) if scope.kind == "key" else ("team", scope.name)
    return int(round(store.spent_since(column, value, scope.period_start(now)) * SPEND_UNIT))
