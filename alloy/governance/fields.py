"""What a key or a team may be given, checked in one place for the CLI and the admin API alike.

``key_values(given, creating)`` and ``team_values(...)`` take a dict (the admin API's JSON, or the
CLI's options) and return the values to store, or raise ``FieldError`` naming the field and what is
wrong: unknown fields, negative or absurd limits, a malformed duration. Nothing is stored before
everything has been checked, so a refused request writes nothing. ``public(row)`` is what a person
sees: no hash, durations and times spelled out; ``with_spend`` adds the budget period a key or team
is in and what it spent there (``alloy keys show``, ``GET /admin/keys/{key}``).
"""

import re
import secrets
import time
from datetime import datetime, timezone

import orjson

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}\Z")
DURATION = re.compile(r"([0-9]{1,12})\s*(s|m|h|d|w)\Z")  # ASCII digits (int() reads any script's), never thousands
UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
MAX_LIMIT = 10**9  # requests or tokens per minute, requests at once: beyond this it is no limit
MAX_BUDGET = 10**7  # USD per period: beyond this it is a typo
MAX_METADATA_BYTES = 4096
DEFAULT_BUDGET_PERIOD = 30 * 86400
MIN_BUDGET = 1e-6  # USD: spend is counted in millionths of a dollar, so a smaller budget would be none
MAX_MODELS = 1000  # names (or patterns) a key or team may list
LATEST = 253402300799  # 9999-12-31T23:59:59Z, the last time an ISO 8601 date can spell
LIMIT_FIELDS = ("models", "rpm", "tpm", "max_parallel", "budget", "budget_period", "metadata")
KEY_FIELDS = frozenset(("name", "team", "expires", *LIMIT_FIELDS))
TEAM_FIELDS = frozenset(("name", *LIMIT_FIELDS))


class FieldError(ValueError):
    def __init__(self, field, problem):
        super().__init__(f"{field}: {problem}")
        self.field = field


def key_values(given, creating):
    if creating and isinstance(given, dict) and "name" not in given:
        # A key needs no name to work (it is addressed by its id too): one is made up, the same
        # way for `alloy keys create` and POST /admin/keys. A team is made to be named: not a team.
        given = {**given, "name": "key-" + secrets.token_hex(4)}
    values = _common(given, KEY_FIELDS, creating, "key")
    if "team" in given:
        team = given["team"]
        if team is not None and (not isinstance(team, str) or not NAME.match(team)):
            raise FieldError("team", "expected a team name")
        values["team"] = team
    if "expires" in given:
        values["expires_at"] = expiry(given["expires"])
        if creating and values["expires_at"] is not None and values["expires_at"] <= time.time():
            raise FieldError("expires", "the time is already past: a new key must be usable")
    return values


def team_values(given, creating):
    return _common(given, TEAM_FIELDS, creating, "team")


def _common(given, allowed, creating, kind):
    if not isinstance(given, dict):
        raise FieldError("body", "expected a JSON object")
    unknown = sorted(set(given) - allowed)
    if unknown:
        raise FieldError(unknown[0], f"unknown field (a {kind} takes {', '.join(sorted(allowed))})")
    values = {}
    if "name" in given or creating:
        name = given.get("name")
        if not isinstance(name, str) or not NAME.match(name) or name.startswith(("key_", "team_")):
            raise FieldError("name", "expected 1 to 64 letters, digits or . _ @ - (not starting with key_ or team_)")
        values["name"] = name
    if "models" in given:
        values["models"] = _models(given["models"])
    for field in ("rpm", "tpm", "max_parallel"):
        if field in given:
            values[field] = _limit(field, given[field])
    if "budget" in given:
        values["budget"] = _budget(given["budget"])
    if "budget_period" in given:
        values["budget_period"] = None if given["budget_period"] is None else duration("budget_period", given["budget_period"])
    elif creating and values.get("budget") is not None:
        values["budget_period"] = DEFAULT_BUDGET_PERIOD
    if "metadata" in given:
        values["metadata"] = _metadata(given["metadata"])
    return values


def _models(value):
    if value is None:
        return None
    if isinstance(value, str):
        value = [item.strip() for item in value.split(",") if item.strip()]
    if (
        not isinstance(value, list)
        or not 0 < len(value) <= MAX_MODELS
        or not all(isinstance(m, str) and 0 < len(m) <= 256 and m.isprintable() for m in value)
    ):
        raise FieldError("models", f"expected a list of 1 to {MAX_MODELS} model names (wildcards allowed: gpt-4o*)")
    return value


def _limit(field, value):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_LIMIT:
        raise FieldError(field, f"expected a whole number from 1 to {MAX_LIMIT} (or null for no limit)")
    return value


def _budget(value):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not MIN_BUDGET <= value <= MAX_BUDGET:
        raise FieldError("budget", f"expected USD, from {MIN_BUDGET:.6f} to {MAX_BUDGET} (or null for none)")
    return float(value)


def _metadata(value):
    if value is None:
        return None
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, (str, int, float, bool)) for k, v in value.items()):
        raise FieldError("metadata", "expected an object of names to strings or numbers")
    if len(orjson.dumps(value)) > MAX_METADATA_BYTES:  # as stored: UTF-8 JSON
        raise FieldError("metadata", f"at most {MAX_METADATA_BYTES} bytes")
    return value


def duration(field, value):
    """Seconds from ``"30d"``, ``"12h"``, ``"1w"``... or a number of seconds."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= 10 * 366 * 86400:
        return value
    if isinstance(value, str):
        match = DURATION.match(value.strip())
        if match and 0 < int(match.group(1)) * UNIT_SECONDS[match.group(2)] <= 10 * 366 * 86400:
            return int(match.group(1)) * UNIT_SECONDS[match.group(2)]
    raise FieldError(field, "expected a duration such as 1d, 30d, 12h, 1w (at most 10 years)")


def expiry(value):
    """A wall-clock time from a duration from now (``"7d"``), an ISO 8601 time, or null."""
    return None if value is None else moment("expires", value, ahead=True)


def moment(field, value, ahead):
    """A wall-clock time from an ISO 8601 time, or a duration from now (``ahead``) or ago."""
    if isinstance(value, str):
        if DURATION.match(value.strip()):
            span = duration(field, value)
            return time.time() + span if ahead else time.time() - span
        try:
            when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise FieldError(field, "expected a duration (7d) or an ISO 8601 time") from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        seconds = when.timestamp()
        if not 0 <= seconds <= LATEST:  # stored, then shown again: it must be a UTC time we can spell
            raise FieldError(field, "expected a time between 1970 and 9999 (UTC)")
        return seconds
    raise FieldError(field, "expected a duration (7d) or an ISO 8601 time")


def iso(seconds):
    return None if seconds is None else datetime.fromtimestamp(seconds, timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def period_bounds(anchor, period, now):
    """The budget period ``now`` falls in, counted from ``anchor`` (the key's or team's creation) in
    steps of ``period`` seconds: (start, end); without a period, (0.0, None), the whole life."""
    if not period:
        return 0.0, None
    start = anchor + ((now - anchor) // period) * period
    return start, start + period


def with_spend(shown, budget, start, end, spent):
    """``shown`` (a ``public`` row) with ``spend``: the period, what the ledger records spent in it
    (USD), and what is left of the budget (None without one)."""
    left = None if not budget else round(max(budget - spent, 0.0), 6)
    spend = {"period_start": iso(start) if start else None, "period_end": iso(end), "spent": round(float(spent), 6), "remaining": left}
    return {**shown, "spend": spend}


def spelled(seconds):
    if seconds is None:
        return None
    for unit in ("w", "d", "h", "m"):
        if seconds % UNIT_SECONDS[unit] == 0:
            return f"{seconds // UNIT_SECONDS[unit]}{unit}"
    return f"{seconds}s"


def public(row):
    """A key or team as shown: no hash, periods and times spelled out."""
    out = {name: value for name, value in row.items() if name != "hash"}
    out["budget_period"] = spelled(row.get("budget_period"))
    for name in ("expires_at", "created_at", "updated_at", "revoked_at"):
        if name in out:
            out[name] = iso(out[name])
    return out
