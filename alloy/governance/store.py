"""The SQLite file that holds keys, teams and the spend ledger.

One file, created on first use, in WAL mode (readers never wait for the writer, so every worker and
``alloy keys`` read it at once), with ``busy_timeout`` so concurrent writers queue rather than fail.
The schema is versioned with SQLite's ``user_version``: ``MIGRATIONS[n]`` takes a file from version
n to n + 1, each in its own transaction, so an older file is brought up to date when opened and a
newer one (from a later Alloy) is refused instead of misread.

A key's secret never enters the file: only its SHA-256 (keys are 256 random bits, so a plain hash
cannot be reversed by guessing) and a short prefix to recognize it in a listing. Every change to a
key or a team bumps ``keys_version`` in ``meta``: the gateway polls that one value to know when to
reload (``alloy.governance.keyring``).

Rows are plain dicts at this boundary; validation of what goes in is ``alloy.governance.fields``.
"""

import hashlib
import os
import secrets
import sqlite3
import time
from itertools import chain

import orjson

from alloy.governance.attribution import metadata_key
from alloy.governance.fields import DEFAULT_BUDGET_PERIOD, period_bounds

SECRET_PREFIX = "sk-alloy-"
MIGRATIONS = (
    # 0 -> 1: keys, teams, the ledger
    """
    CREATE TABLE meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
    INSERT INTO meta VALUES ('keys_version', 0);
    CREATE TABLE teams (
        id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, models TEXT, rpm INTEGER, tpm INTEGER,
        max_parallel INTEGER, budget REAL, budget_period INTEGER, metadata TEXT,
        created_at REAL NOT NULL, updated_at REAL NOT NULL
    );
    CREATE TABLE keys (
        id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, prefix TEXT NOT NULL, hash BLOB NOT NULL UNIQUE,
        team TEXT, models TEXT, rpm INTEGER, tpm INTEGER, max_parallel INTEGER, budget REAL,
        budget_period INTEGER, expires_at REAL, metadata TEXT, created_at REAL NOT NULL,
        updated_at REAL NOT NULL, revoked_at REAL
    );
    CREATE TABLE ledger (
        id INTEGER PRIMARY KEY, at REAL NOT NULL, key_id TEXT, key_name TEXT, team TEXT, model TEXT,
        served_model TEXT, provider TEXT, endpoint TEXT, status INTEGER, tokens_in INTEGER NOT NULL,
        tokens_out INTEGER NOT NULL, tokens_cached INTEGER NOT NULL, cost REAL NOT NULL,
        latency_ms REAL, user TEXT, tags TEXT, request_id TEXT
    );
    CREATE INDEX ledger_at ON ledger (at);
    CREATE INDEX ledger_key_at ON ledger (key_id, at);
    CREATE INDEX ledger_team_at ON ledger (team, at);
    """,
    # 1 -> 2: the body's metadata object, as JSON text (alloy.governance.attribution)
    """
    ALTER TABLE ledger ADD COLUMN metadata TEXT;
    """,
    # 2 -> 3: Alloy's own error code, and how many requests a row counts (refusals are counted
    # per flush: alloy.governance.refused)
    """
    ALTER TABLE ledger ADD COLUMN error TEXT;
    ALTER TABLE ledger ADD COLUMN requests INTEGER NOT NULL DEFAULT 1;
    """,
    # 3 -> 4: the key and team indexes hold only the rows that have a key or a team (a row costs
    # its indexes about half of its insert; a key without a team skips one); ``key_id = ?``
    # and ``team = ?`` imply NOT NULL, so the spend and usage queries still use them.
    """
    DROP INDEX ledger_key_at;
    DROP INDEX ledger_team_at;
    CREATE INDEX ledger_key_at ON ledger (key_id, at) WHERE key_id IS NOT NULL;
    CREATE INDEX ledger_team_at ON ledger (team, at) WHERE team IS NOT NULL;
    """,
)
# What governance refuses before anything goes upstream (counted as ``refused`` by ``usage``), and
# a deployment quota's 429 (nothing sent either).
REFUSAL_CODES = ("invalid_api_key", "model_not_found", "rate_limit_exceeded", "insufficient_quota", "shared_limits_unavailable")
LIMIT_COLUMNS = ("models", "rpm", "tpm", "max_parallel", "budget", "budget_period", "metadata")
KEY_COLUMNS = ("team", *LIMIT_COLUMNS, "expires_at")
JSON_COLUMNS = frozenset(("models", "metadata"))
TEAM_RECORD = ("id", "name", *LIMIT_COLUMNS, "created_at", "updated_at")
KEY_RECORD = ("id", "name", "prefix", "hash", *KEY_COLUMNS, "created_at", "updated_at", "revoked_at")
LEDGER_COLUMNS = (
    "at", "key_id", "key_name", "team", "model", "served_model", "provider", "endpoint", "status",
    "tokens_in", "tokens_out", "tokens_cached", "cost", "latency_ms", "user", "tags", "request_id", "metadata",
    "error", "requests",
)  # fmt: skip
# The text columns a row may leave empty. A row may give them as "" instead of None: SQLite's
# NULLIF stores NULL all the same, and Python's sqlite3 binds a str far faster than a None (which
# it first offers to the adaptation protocol), so the ledger's writer gives "".
LEDGER_OPTIONAL_TEXT = frozenset(("key_id", "key_name", "team", "model", "served_model", "provider", "user", "tags", "request_id", "metadata", "error"))
_LEDGER_VALUES = "({})".format(",".join("NULLIF(?, '')" if column in LEDGER_OPTIONAL_TEXT else "?" for column in LEDGER_COLUMNS))
LEDGER_INSERT = "INSERT INTO ledger ({}) VALUES {}".format(",".join(LEDGER_COLUMNS), _LEDGER_VALUES)
# Rows go in LEDGER_ROWS_AT_ONCE to a statement: each statement run costs the writer a GIL release
# and SQLite's own locking, which per row was about a quarter of the insert (3.2 -> 2.4 µs a row
# in a batch of 256, benchmarks/README.md). 64 rows are 1,280 parameters, far under SQLite's limit.
LEDGER_ROWS_AT_ONCE = 64
LEDGER_INSERT_MANY = "INSERT INTO ledger ({}) VALUES {}".format(
    ",".join(LEDGER_COLUMNS), ",".join([_LEDGER_VALUES] * LEDGER_ROWS_AT_ONCE)
)


class StoreError(Exception):
    """A request the store refuses (a duplicate name, an unknown key): phrased for the caller, with
    the field it is about when there is one (the admin API's 400 names it as ``param``)."""

    def __init__(self, message, field=None):
        super().__init__(message)
        self.field = field


class NotFoundError(StoreError):
    pass


def hash_secret(secret):
    """The stored form of a key: its SHA-256 digest (bytes)."""
    return hashlib.sha256(secret if isinstance(secret, bytes) else secret.encode()).digest()


def new_secret():
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    return secret, secret[: len(SECRET_PREFIX) + 4] + "..."


BUSY_SECONDS = 10.0  # how long a writer waits for another process's lock before giving up


class Store:
    def __init__(self, path, create=True):
        if not create and not os.path.exists(path):
            raise StoreError(f"no database at {path} (alloy keys create or alloy teams create makes it)")
        directory = os.path.dirname(os.path.abspath(path))
        os.makedirs(directory, exist_ok=True)
        self.path = path
        # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE ... COMMIT).
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=BUSY_SECONDS)
        self.db.row_factory = sqlite3.Row
        self.db.execute(f"PRAGMA busy_timeout = {int(BUSY_SECONDS * 1000)}")
        self._write_ahead_log()
        self.db.execute("PRAGMA synchronous = NORMAL")  # WAL: durable at each checkpoint, never corrupt
        self._migrate()

    def close(self):
        self.db.close()

    def _write_ahead_log(self):
        """WAL mode (kept in the file once set). Setting it on a new file takes an exclusive lock,
        which SQLite refuses at once instead of waiting out the busy timeout: two processes opening a
        new file together (the workers of ``--workers N``, two first keys through the admin API) saw
        "database is locked". The switch is retried for as long as the busy timeout would wait."""
        deadline = time.monotonic() + BUSY_SECONDS
        while True:
            try:
                self.db.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as error:
                if "locked" not in str(error) or time.monotonic() > deadline:
                    raise
                time.sleep(0.005)

    def _migrate(self):
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version > len(MIGRATIONS):
            raise StoreError(f"{self.path} has schema version {version}, newer than this Alloy knows ({len(MIGRATIONS)})")
        while version < len(MIGRATIONS):
            with self.transaction():
                # Read again under the write lock: another process (alloy keys create, a worker)
                # may have brought the file up to date since the read above.
                version = self.db.execute("PRAGMA user_version").fetchone()[0]
                if version < len(MIGRATIONS):
                    _run_script(self.db, MIGRATIONS[version])
                    version += 1
                    self.db.execute(f"PRAGMA user_version = {version}")

    def transaction(self):
        return _Transaction(self.db)

    # --- keys and teams ----------------------------------------------------------------------------

    def create_key(self, values):
        """A new key from validated ``values`` (name, team, limits...): (row, secret)."""
        secret, prefix = new_secret()
        now = time.time()
        row = {"id": "key_" + secrets.token_hex(8), "name": values["name"], "prefix": prefix}
        row.update({column: values.get(column) for column in KEY_COLUMNS})
        with self.transaction():
            row["team"] = self._check_team(row["team"])
            self._check_free("keys", row["name"])
            self.db.execute(
                "INSERT INTO keys (id, name, prefix, hash, team, models, rpm, tpm, max_parallel, budget, budget_period,"
                " metadata, expires_at, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (row["id"], row["name"], prefix, hash_secret(secret), row["team"], *self._stored(row, LIMIT_COLUMNS),
                 row["expires_at"], now, now),
            )  # fmt: skip
            self._bump()
        return self.key(row["id"]), secret

    def key(self, ref):
        """The key addressed by its id or its name (NotFoundError otherwise)."""
        found = self.db.execute("SELECT * FROM keys WHERE id = ? OR name = ?", (ref, ref)).fetchone()
        if found is None:
            raise NotFoundError(f"no key with the id or name {ref!r}")
        return key_fields(found)

    def stored_keys(self):
        """Every key as stored (``sqlite3.Row``: compared as a whole, converted by ``key_fields``),
        for a keyring that rebuilds only what changed."""
        return self.db.execute("SELECT * FROM keys ORDER BY created_at").fetchall()

    def keys(self, include_revoked=True):
        query = "SELECT * FROM keys" + ("" if include_revoked else " WHERE revoked_at IS NULL") + " ORDER BY created_at"
        return [key_fields(row) for row in self.db.execute(query)]

    def update_key(self, ref, values):
        with self.transaction():
            current = self.key(ref)
            values = _with_budget_period(values, current)
            if "team" in values:
                values = {**values, "team": self._check_team(values["team"])}
            if "name" in values and values["name"] != current["name"]:
                self._check_free("keys", values["name"])
            self._update("keys", current["id"], values)
        return self.key(current["id"])

    def revoke_key(self, ref):
        with self.transaction():
            current = self.key(ref)
            if current["revoked_at"] is None:
                self.db.execute("UPDATE keys SET revoked_at = ?, updated_at = ? WHERE id = ?", (time.time(), time.time(), current["id"]))
                self._bump()
        return self.key(current["id"])

    def rotate_key(self, ref):
        """A new secret for the key (same id, name, limits and spend); the old one stops working."""
        secret, prefix = new_secret()
        with self.transaction():
            current = self.key(ref)
            if current["revoked_at"] is not None:
                raise StoreError(f"key {current['name']!r} is revoked: create a new one")
            self.db.execute(
                "UPDATE keys SET hash = ?, prefix = ?, updated_at = ? WHERE id = ?",
                (hash_secret(secret), prefix, time.time(), current["id"]),
            )
            self._bump()
        return self.key(current["id"]), secret

    def create_team(self, values):
        now = time.time()
        row = {"id": "team_" + secrets.token_hex(6), "name": values["name"]}
        row.update({column: values.get(column) for column in LIMIT_COLUMNS})
        with self.transaction():
            self._check_free("teams", row["name"])
            self.db.execute(
                "INSERT INTO teams (id, name, models, rpm, tpm, max_parallel, budget, budget_period, metadata,"
                " created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (row["id"], row["name"], *self._stored(row, LIMIT_COLUMNS), now, now),
            )
            self._bump()
        return self.team(row["id"])

    def team(self, ref):
        found = self.db.execute("SELECT * FROM teams WHERE id = ? OR name = ?", (ref, ref)).fetchone()
        if found is None:
            raise NotFoundError(f"no team with the id or name {ref!r}")
        return team_fields(found)

    def stored_teams(self):
        """Every team as stored (converted by ``team_fields``)."""
        return self.db.execute("SELECT * FROM teams ORDER BY created_at").fetchall()

    def teams(self):
        return [team_fields(row) for row in self.db.execute("SELECT * FROM teams ORDER BY created_at")]

    def update_team(self, ref, values):
        with self.transaction():
            current = self.team(ref)
            values = _with_budget_period(values, current)
            if "name" in values and values["name"] != current["name"]:
                self._check_free("teams", values["name"])
                self._rename_team(current["name"], values["name"])
            self._update("teams", current["id"], values)
        return self.team(current["id"])

    def delete_team(self, ref):
        with self.transaction():
            current = self.team(ref)
            used = self.db.execute("SELECT count(*) FROM keys WHERE team = ? AND revoked_at IS NULL", (current["name"],)).fetchone()[0]
            if used:
                raise StoreError(f"team {current['name']!r} still has {used} active key(s)")
            self.db.execute("DELETE FROM teams WHERE id = ?", (current["id"],))
            self._bump()
        return current

    # --- records shared with other instances (alloy.governance.key_sharing) ----------------------

    def records(self):
        """Every team and key as a record another instance can merge: (teams, keys). A key's
        record holds the SHA-256 of its secret (hex), never the secret."""
        keys = [{**row, "hash": row["hash"].hex()} for row in self.keys()]
        return self.teams(), keys

    def merge(self, teams, keys):
        """Records from another instance, each written when newer (``updated_at``) than this file's
        copy, teams first; a revocation is never undone; a team renamed renames it in its keys.
        A record that clashes with another row's name (or secret) is skipped. Returns (records
        written, names skipped)."""
        written, skipped = 0, []
        with self.transaction():
            for record in teams:
                written += self._merge_row("teams", record, TEAM_RECORD, skipped)
            for record in keys:
                written += self._merge_row("keys", {**record, "hash": bytes.fromhex(record["hash"])}, KEY_RECORD, skipped)
            if written:
                self._bump()
        return written, skipped

    def _merge_row(self, table, record, columns, skipped):
        current = self.db.execute(f"SELECT name, updated_at FROM {table} WHERE id = ?", (record["id"],)).fetchone()
        if current is not None and current["updated_at"] >= record["updated_at"]:
            return 0
        values = [
            orjson.dumps(record[c]).decode() if c in JSON_COLUMNS and record.get(c) is not None else record.get(c)
            for c in columns
        ]
        try:
            if current is None:
                self.db.execute(f"INSERT INTO {table} ({','.join(columns)}) VALUES ({','.join('?' * len(columns))})", values)
            else:
                assignments = ", ".join(
                    "revoked_at = coalesce(revoked_at, ?)" if c == "revoked_at" else f"{c} = ?" for c in columns[1:]
                )
                self.db.execute(f"UPDATE {table} SET {assignments} WHERE id = ?", (*values[1:], record["id"]))
                if table == "teams" and current["name"] != record["name"]:
                    self._rename_team(current["name"], record["name"])
        except sqlite3.IntegrityError:  # a name (or secret) this file gives another row
            skipped.append(record["name"])
            return 0
        return 1

    def keys_version(self):
        return self.db.execute("SELECT value FROM meta WHERE name = 'keys_version'").fetchone()[0]

    def _rename_team(self, old, new):
        """A team's keys and its ledger rows follow it to its new name: its spend (the budget's
        seed at start, ``spent_since``) and its usage stay one team's."""
        self.db.execute("UPDATE keys SET team = ? WHERE team = ?", (new, old))
        self.db.execute("UPDATE ledger SET team = ? WHERE team = ?", (new, old))

    def _check_team(self, team):
        """The name of the team ``team`` names (by its name or its id), or None for no team."""
        if team is None:
            return None
        found = self.db.execute("SELECT name FROM teams WHERE name = ? OR id = ?", (team, team)).fetchone()
        if found is None:
            raise StoreError(f"no team named {team!r}: create it first (alloy teams create --name {team})", "team")
        return found[0]

    def _check_free(self, table, name):
        # A name must not read as another row's id either: every command takes an id or a name.
        taken = self.db.execute(f"SELECT 1 FROM {table} WHERE name = ? OR id = ?", (name, name)).fetchone()
        if taken is not None:
            raise StoreError(f"the name {name!r} is already taken", "name")

    def _update(self, table, row_id, values):
        columns = [column for column in values if column != "id"]
        if columns:
            stored = self._stored(values, columns)
            assignments = ", ".join(f"{column} = ?" for column in columns)
            self.db.execute(f"UPDATE {table} SET {assignments}, updated_at = ? WHERE id = ?", (*stored, time.time(), row_id))
            self._bump()

    def _stored(self, row, columns):
        return [
            orjson.dumps(row[c]).decode() if c in JSON_COLUMNS and row.get(c) is not None else row.get(c) for c in columns
        ]

    def _bump(self):
        self.db.execute("UPDATE meta SET value = value + 1 WHERE name = 'keys_version'")

    # --- the ledger --------------------------------------------------------------------------------

    def append_ledger(self, rows):
        """Rows (tuples in ``LEDGER_COLUMNS`` order; "" or None for an optional text) in one transaction."""
        whole = len(rows) - len(rows) % LEDGER_ROWS_AT_ONCE
        with self.transaction():
            for start in range(0, whole, LEDGER_ROWS_AT_ONCE):
                self.db.execute(LEDGER_INSERT_MANY, list(chain.from_iterable(rows[start : start + LEDGER_ROWS_AT_ONCE])))
            if whole < len(rows):
                self.db.executemany(LEDGER_INSERT, rows[whole:])

    def period_spend(self, row, kind, now=None):
        """(start, end, USD): the budget period a key or team (``kind``) is in, and what the ledger
        records it spent there. Running gateways count ahead of the ledger by its batch window."""
        start, end = period_bounds(row["created_at"], row["budget_period"], time.time() if now is None else now)
        column, value = ("key_id", row["id"]) if kind == "key" else ("team", row["name"])
        return start, end, self.spent_since(column, value, start)

    def spent_since(self, column, value, since):
        """USD spent by a key (column ``key_id``) or a team (``team``) since a wall-clock time."""
        found = self.db.execute(f"SELECT coalesce(sum(cost), 0) FROM ledger WHERE {column} = ? AND at >= ?", (value, since))
        return found.fetchone()[0]

    def usage(self, by="key", since=None, key=None, team=None):
        """Totals grouped by key, team, model, day, user (the body's ``user``), tags (``x-alloy-tags``),
        ``metadata.KEY`` (that key of the body's ``metadata``) or status, newest activity first:
        requests, tokens, cost, errors (status 400 or more) and refused (of the errors, those
        refused before anything went upstream: ``REFUSAL_CODES``)."""
        where, args = ["1 = 1"], []
        metadata = metadata_key(by)
        if metadata is not None:
            group = "json_extract(metadata, ?)"
            args.append(f'$."{metadata}"')  # metadata_key refuses quotes and backslashes
        else:
            # A key is grouped under its current name (a renamed key's rows stay one row).
            group = {"key": "coalesce((SELECT name FROM keys WHERE keys.id = ledger.key_id), key_name)", "team": "team", "model": "model", "day": "date(at, 'unixepoch')", "user": "user", "tags": "tags", "status": "status"}[by]
        if since is not None:
            where.append("at >= ?")
            args.append(since)
        if key is not None:
            # Its id or current name; the name it had in older rows when no key has it now.
            found = self.db.execute("SELECT id FROM keys WHERE id = ? OR name = ?", (key, key)).fetchone()
            if found is not None:
                where.append("key_id = ?")
                args.append(found[0])
            else:
                # A name no key has and no row records is a typo, not a key that spent nothing.
                if self.db.execute("SELECT 1 FROM ledger WHERE key_id = ? OR key_name = ? LIMIT 1", (key, key)).fetchone() is None:
                    raise NotFoundError(f"no key with the id or name {key!r}, now or in the ledger")
                where.append("(key_id = ? OR key_name = ?)")
                args.extend((key, key))
        if team is not None:
            found = self.db.execute("SELECT name FROM teams WHERE id = ? OR name = ?", (team, team)).fetchone()
            if found is None and self.db.execute("SELECT 1 FROM ledger WHERE team = ? LIMIT 1", (team,)).fetchone() is None:
                raise NotFoundError(f"no team with the id or name {team!r}, now or in the ledger")
            where.append("team = ?")
            args.append(team if found is None else found[0])
        refusals = ",".join(f"'{code}'" for code in REFUSAL_CODES)
        query = (
            f"SELECT {group} AS grp, sum(requests) AS requests, sum(tokens_in) AS tokens_in, sum(tokens_out) AS tokens_out,"
            f" sum(tokens_cached) AS tokens_cached, sum(cost) AS cost, sum((status >= 400) * requests) AS errors,"
            f" sum((provider IS NULL AND coalesce(error, '') IN ({refusals})) * requests) AS refused, max(at) AS last"
            f" FROM ledger WHERE {' AND '.join(where)} GROUP BY grp ORDER BY last DESC"
        )
        return [
            {by: row["grp"], "requests": row["requests"], "tokens_in": row["tokens_in"], "tokens_out": row["tokens_out"],
             "tokens_cached": row["tokens_cached"], "cost_usd": round(row["cost"], 9), "errors": row["errors"],
             "refused": row["refused"]}
            for row in self.db.execute(query, args)
        ]  # fmt: skip


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any exception: nothing half-written."""

    def __init__(self, db):
        self.db = db

    def __enter__(self):
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind, value, traceback):
        self.db.execute("COMMIT" if kind is None else "ROLLBACK")
        return False


def _run_script(db, script):
    # executescript would COMMIT the open transaction first: run the statements one by one instead.
    for statement in script.split(";"):
        if statement.strip():
            db.execute(statement)


def _with_budget_period(values, current):
    """A budget given to a key or team that had none comes with the default period, as at creation
    (unless the update names one): a budget without a period would never reset."""
    if values.get("budget") is not None and "budget_period" not in values and current["budget_period"] is None:
        return {**values, "budget_period": DEFAULT_BUDGET_PERIOD}
    return values


def _limits(row):
    out = {column: row[column] for column in LIMIT_COLUMNS}
    for column in JSON_COLUMNS:
        if out[column] is not None:
            out[column] = orjson.loads(out[column])
    return out


def key_fields(row):
    out = {"id": row["id"], "name": row["name"], "prefix": row["prefix"], "team": row["team"], **_limits(row)}
    out.update(expires_at=row["expires_at"], created_at=row["created_at"], updated_at=row["updated_at"], revoked_at=row["revoked_at"])
    out["hash"] = row["hash"]  # for the keyring; never shown (fields.public drops it)
    return out


def team_fields(row):
    out = {"id": row["id"], "name": row["name"], **_limits(row)}
    out.update(created_at=row["created_at"], updated_at=row["updated_at"])
    return out
