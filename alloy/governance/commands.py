"""``alloy keys``, ``alloy teams`` and ``alloy usage``: the admin API's twin on the command line,
working on the database file directly (no running gateway needed; a running one sees the change
within its ``sync_interval``).

    alloy keys create [--name N] [--team T] [--models a,b] [--rpm N] [--tpm N] [--max-parallel N]
                      [--budget USD] [--budget-period 30d] [--expires 7d|ISO] [--metadata k=v ...]
    alloy keys list | show KEY | update KEY [options] | revoke KEY | rotate KEY
    alloy teams create --name N [limits] | list | show TEAM | update TEAM [limits] | delete TEAM
    alloy usage [--by key|team|model|day|user|tags|status|metadata.KEY] [--since 7d|ISO] [--key KEY] [--team TEAM]

Every command takes ``--db FILE`` or ``--config alloy.toml`` (its ``[governance] path``); without
either, the default location (``$ALLOY_DB``, else the XDG data directory). ``update`` takes
``none`` to remove a limit (``--rpm none``). Output is JSON, except ``list`` and ``usage`` which
print a table (``--json`` for JSON). A key's secret is printed once, by ``create`` and ``rotate``.
Exit codes: 0 done, 1 refused (the reason on stderr), 2 bad usage.
"""

import argparse
import sqlite3
import sys

import orjson

from alloy.config import ConfigError
from alloy.config.document import read_document
from alloy.config.governance import database_path_in, default_database_path
from alloy.governance.admin import USAGE_GROUPS, is_usage_group, shown
from alloy.governance.fields import FieldError, key_values, moment, public, team_values
from alloy.governance.store import Store, StoreError

LIMIT_OPTIONS = (
    ("--models", "models", str, "model names, aliases or wildcards this may use, comma-separated"),
    ("--rpm", "rpm", int, "requests per minute"),
    ("--tpm", "tpm", int, "tokens per minute (reserved from max_tokens + prompt size, then the real usage)"),
    ("--max-parallel", "max_parallel", int, "requests in flight at once"),
    ("--budget", "budget", float, "USD per budget period"),
    ("--budget-period", "budget_period", str, "how often the budget resets: 1d, 30d, 1w... (default 30d)"),
)


REMOVE = object()  # "--rpm none": remove the limit (an absent option leaves it as it is)


def _number(kind):
    def parse(text):
        return REMOVE if text.lower() == "none" else kind(text)

    parse.__name__ = kind.__name__
    return parse


def _limits(parser, key=False):
    parser.add_argument("--name")
    if key:
        parser.add_argument("--team", type=_number(str), help="the team this key belongs to (none: no team)")
        parser.add_argument("--expires", type=_number(str), help="7d, 12h... from now, or an ISO 8601 time")
        parser.add_argument("--metadata", action="append", metavar="K=V", help="a label to keep with the key")
    for flag, dest, kind, text in LIMIT_OPTIONS:
        parser.add_argument(flag, dest=dest, type=_number(kind), help=text + " (none: no limit)")


KEY_ACTIONS = (
    ("show", "one key's settings and its spend this budget period"),
    ("revoke", "refuse the key from now on (every worker within a second)"),
    ("rotate", "a new secret for the key, shown once; the old one stops working"),
)
TEAM_ACTIONS = (
    ("show", "one team's settings and its spend this budget period"),
    ("delete", "remove a team no active key belongs to"),
)


def _parser():
    parser = argparse.ArgumentParser(prog="alloy", description="Virtual keys, teams and the spend ledger.")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--db", metavar="FILE", help="the database (default: $ALLOY_DB or the XDG data dir)")
    common.add_argument("--config", metavar="FILE", help="read the database path from this alloy.toml")
    common.add_argument("--json", action="store_true", help="JSON output for list and usage")
    groups = parser.add_subparsers(dest="group", required=True)
    keys = groups.add_parser("keys", help="virtual keys").add_subparsers(dest="command", required=True)
    _limits(keys.add_parser("create", parents=[common], help="a new key, its secret shown once"), key=True)
    keys.add_parser("list", parents=[common], help="every key: its id, name, prefix, team and limits")
    for name, text in KEY_ACTIONS:
        keys.add_parser(name, parents=[common], help=text).add_argument("ref", metavar="KEY", help="its id or name")
    update = keys.add_parser("update", parents=[common], help="change a key's limits, team or expiry")
    update.add_argument("ref", metavar="KEY", help="its id or name")
    _limits(update, key=True)
    teams = groups.add_parser("teams", help="teams of keys").add_subparsers(dest="command", required=True)
    _limits(teams.add_parser("create", parents=[common], help="a new team with its models and limits"))
    teams.add_parser("list", parents=[common], help="every team and its limits")
    for name, text in TEAM_ACTIONS:
        teams.add_parser(name, parents=[common], help=text).add_argument("ref", metavar="TEAM", help="its id or name")
    update = teams.add_parser("update", parents=[common], help="change a team's limits")
    update.add_argument("ref", metavar="TEAM", help="its id or name")
    _limits(update)
    usage = groups.add_parser("usage", parents=[common], help="spend and tokens from the ledger")
    usage.add_argument("--by", type=_usage_group, default="key", help=f"{', '.join(USAGE_GROUPS)} or metadata.KEY")
    usage.add_argument("--since", help="7d, 24h... ago, or an ISO 8601 time")
    usage.add_argument("--key", help="only this key's requests (its id or name)")
    usage.add_argument("--team", help="only this team's requests (its id or name)")
    return parser


def _usage_group(text):
    if not is_usage_group(text):
        raise argparse.ArgumentTypeError(f"expected one of {', '.join(USAGE_GROUPS)} or metadata.KEY, not {text!r}")
    return text


def main(argv):
    """``argv`` starts with ``keys``, ``teams`` or ``usage``; returns the exit code."""
    args = _parser().parse_args(argv)
    # Reading (list, show, usage) never creates a database: a mistyped path is said, not made.
    reads = args.group == "usage" or getattr(args, "command", None) in ("list", "show")
    try:
        created = creation(args)  # checked before a database is made for it
    except FieldError as error:
        print(f"alloy: {error}", file=sys.stderr)
        return 2
    path = None
    try:
        path = database_path(args)
        store = Store(path, create=not reads)
    except (ConfigError, StoreError) as error:
        print(f"alloy: {error}", file=sys.stderr)
        return 1
    except (sqlite3.Error, OSError) as error:  # not a database, a directory, no permission...
        print(f"alloy: cannot open the database {path}: {error}", file=sys.stderr)
        return 1
    try:
        return run(args, store, created)
    except FieldError as error:
        print(f"alloy: {error}", file=sys.stderr)
        return 2
    except StoreError as error:
        print(f"alloy: {error}", file=sys.stderr)
        return 1
    except sqlite3.Error as error:
        print(f"alloy: the database {path} cannot be used: {error}", file=sys.stderr)
        return 1
    finally:
        store.close()


def database_path(args):
    if args.db:
        return args.db
    if args.config:  # its [governance] path alone: no provider secrets needed (a whole load checks them)
        return database_path_in(args.config, read_document(args.config))
    return default_database_path()


def given(args, key):
    """The options the person typed, as the admin API's JSON would carry them."""
    out = {}
    for name in ("name", "team", "expires", *(dest for _, dest, _, _ in LIMIT_OPTIONS)):
        value = getattr(args, name, None)
        if value is not None:
            out[name] = None if value is REMOVE else value
    if key and args.metadata:
        pairs = [item.partition("=") for item in args.metadata]
        if any(not sep or not k for k, sep, _ in pairs):
            raise FieldError("metadata", "expected K=V")
        out["metadata"] = {k: v for k, _, v in pairs}
    return out


def creation(args):
    """A ``create``'s values, validated (None for the other commands): a refused one (``--rpm 0``)
    must not leave a new, empty database behind, which a running gateway would take up."""
    if getattr(args, "command", None) != "create":
        return None
    key = args.group == "keys"
    values = given(args, key)
    if key:
        return key_values(values, creating=True)
    return team_values(values, creating=True)


def run(args, store, created=None):
    group, command = args.group, getattr(args, "command", None)
    if group == "usage":
        since = None if args.since is None else moment("since", args.since, ahead=False)
        rows = store.usage(args.by, since, args.key, args.team)
        return _table(rows, [args.by, "requests", "tokens_in", "tokens_out", "tokens_cached", "cost_usd", "errors", "refused"], args.json)
    key = group == "keys"
    if command == "list":
        # With each one's spend this budget period, as ``show`` gives it (one indexed query each).
        rows = [shown(store, row, group[:-1]) for row in (store.keys() if key else store.teams())]
        if args.json:
            return _print(rows)
        columns = ["id", "name", "prefix", "team", "rpm", "tpm", "budget", "spent", "revoked_at"] if key else ["id", "name", "rpm", "tpm", "budget", "spent"]
        return _table([{**row, "spent": row["spend"]["spent"]} for row in rows], columns, False)
    if command == "show":
        return _print(shown(store, store.key(args.ref) if key else store.team(args.ref), group[:-1]))
    if command == "create":
        if key:
            row, secret = store.create_key(created)
            print("alloy: the key is shown this once; store it now", file=sys.stderr)
            return _print({**public(row), "key": secret})
        return _print(public(store.create_team(created)))
    if command == "update":
        values = given(args, key)
        if key:
            return _print(public(store.update_key(args.ref, key_values(values, creating=False))))
        return _print(public(store.update_team(args.ref, team_values(values, creating=False))))
    if command == "revoke":
        return _print(public(store.revoke_key(args.ref)))
    if command == "rotate":
        row, secret = store.rotate_key(args.ref)
        print("alloy: the new key is shown this once; the old one no longer works", file=sys.stderr)
        return _print({**public(row), "key": secret})
    if command == "delete":
        return _print(public(store.delete_team(args.ref)))
    raise AssertionError(command)


def _print(document):
    print(_json_text(document))
    return 0


def _json_text(document):
    """``document`` as indented JSON for a terminal: a client's or an admin's text (names,
    metadata) with an invisible character (U+202E turning the line around, a zero-width space) has
    it written as its JSON escape, which reads back as the same text (control characters already
    are escaped by JSON itself)."""
    text = orjson.dumps(document, option=orjson.OPT_INDENT_2).decode()
    if text.isascii():
        return text
    return "".join(c if c == "\n" or c.isprintable() else _json_escape(c) for c in text)


def _json_escape(character):
    code = ord(character)
    if code > 0xFFFF:  # as a UTF-16 surrogate pair, as JSON spells it
        code -= 0x10000
        return "\\u%04x\\u%04x" % (0xD800 + (code >> 10), 0xDC00 + (code & 0x3FF))
    return "\\u%04x" % code


def _harmless(text):
    """A cell as the terminal should show it. Clients write users, tags and metadata: a control
    character (an ANSI escape, a newline forging a row) or an invisible format character (U+202E
    turning the line around, a zero-width space) is printed as its escape, ``\\x1b``, ``\\u202e``."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def _table(rows, columns, as_json):
    if as_json:
        print(_json_text(rows))
        return 0
    cells = [[("" if row.get(c) is None else _harmless(str(row.get(c)))) for c in columns] for row in rows]
    widths = [max([len(c), *(len(line[i]) for line in cells)]) for i, c in enumerate(columns)]
    for line in [columns, *cells]:
        print("  ".join(text.ljust(width) for text, width in zip(line, widths)).rstrip())
    return 0
