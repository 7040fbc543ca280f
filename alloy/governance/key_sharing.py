"""Keys and teams shared by every gateway that shares a Redis (``[governance] redis_url``), each
with its own SQLite file: a key created, changed or revoked on one host reaches the others.

Each gateway publishes what its file holds and merges what the others published, in its keyring's
sync (every ``sync_interval``, on the event loop, asynchronous: never on the request path):

    publish  when its file changed (``keys_version`` moved): every team and key as a record (the
             store's row, a key's secret as its SHA-256 only, never the secret) goes to the Redis
             hash ``alloy:gov:records`` by one Lua script, which keeps a record only when it is
             newer (``updated_at``) than the one there and bumps ``alloy:gov:records:version``
             when anything changed
    merge    when that version moved: read every record and write the newer ones into this
             gateway's file (``Store.merge``: teams first, a revocation is never undone), which
             bumps the file's ``keys_version``; the keyring reloads at once

A record merged is published back unchanged (same ``updated_at``), which the script ignores: the
exchange ends there. So a key created with ``alloy keys create`` on host A's file is accepted on
host B, and a key revoked on A refused on B, within two ``sync_interval`` (A's gateway publishes
at its next sync, B merges at its next) plus two Redis round trips. Every gateway's file ends up
holding every key: a gateway restarted while Redis is down still knows them. With Redis down,
each gateway keeps the keys it has and says so once; the exchange resumes when Redis answers.

Not shared: deleting a team (delete it on each file), the ledger (per file). Whoever can write to
this Redis can add keys: protect it as the database itself.
"""

import asyncio
import logging
import time

import orjson

from alloy.governance.store import KEY_RECORD, TEAM_RECORD

log = logging.getLogger("alloy.governance")
NUMBER_OR_NONE = (int, float, type(None))
SHAPES = {  # what each column of a record must be (else NUMBER_OR_NONE); bool is refused below
    "id": str, "name": str, "prefix": str, "hash": str, "team": (str, type(None)), "models": (list, type(None)),
    "metadata": (dict, type(None)), "rpm": (int, type(None)), "tpm": (int, type(None)),
    "max_parallel": (int, type(None)), "budget_period": (int, type(None)), "created_at": (int, float),
    "updated_at": (int, float),
}  # fmt: skip
RECORDS = "alloy:gov:records"
STAMPS = "alloy:gov:records:at"  # record id -> its updated_at, compared by the script
VERSION = "alloy:gov:records:version"

PUBLISH = """
local changed = 0
for i = 1, #ARGV, 3 do
  local id, at = ARGV[i], tonumber(ARGV[i + 1])
  local known = tonumber(redis.call('HGET', KEYS[2], id))
  if known == nil or known < at then
    redis.call('HSET', KEYS[1], id, ARGV[i + 2])
    redis.call('HSET', KEYS[2], id, ARGV[i + 1])
    changed = changed + 1
  end
end
if changed > 0 then return redis.call('INCR', KEYS[3]) end
return tonumber(redis.call('GET', KEYS[3]) or '0')
"""


class KeySharing:
    def __init__(self, client, store, keyring, timeout):
        self.client = client
        self.store = store
        self.keyring = keyring
        self.timeout = timeout
        self.publish_script = client.register_script(PUBLISH)
        self.published = None  # the file's keys_version last published
        self.merged = None  # the Redis records' version last merged
        self.task = None
        self.down = False  # an outage was logged
        self.clashes = set()  # names logged as clashing (once each)

    def tick(self, loop):
        """At each keyring sync: one exchange at a time, in the background."""
        if self.task is None or self.task.done():
            self.task = loop.create_task(self.exchange())

    async def exchange(self):
        try:
            version = await self._publish()
            if version is None:
                version = int(await asyncio.wait_for(self.client.get(VERSION), self.timeout) or 0)
            if version != self.merged:
                await self._merge(version)
        except Exception as error:  # noqa: BLE001 - Redis down, the file locked: keep the keys we have
            if not self.down:
                log.error("governance: keys are not shared while this fails (%s: %s); each gateway keeps the keys it has", type(error).__name__, error)
                self.down = True
            return
        if self.down:
            log.warning("governance: keys are shared through Redis again")
            self.down = False

    async def _publish(self):
        """This file's records, when it changed since the last publication: the Redis version."""
        local = self.keyring.version
        if local == self.published:
            return None
        teams, keys = self.store.records()
        args = []
        for kind, rows in (("team", teams), ("key", keys)):
            for row in rows:
                args += [row["id"], repr(row["updated_at"]), orjson.dumps({"kind": kind, **row})]
        version = None
        if args:
            version = await asyncio.wait_for(self.publish_script(keys=[RECORDS, STAMPS, VERSION], args=args), self.timeout)
        self.published = local
        return version

    async def _merge(self, version):
        found = await asyncio.wait_for(self.client.hgetall(RECORDS), self.timeout)
        teams, keys = [], []
        for data in found.values():
            record = _record(data)
            if record is not None:
                (teams if record.pop("kind") == "team" else keys).append(record)
        started = time.monotonic()
        written, skipped = self.store.merge(teams, keys)
        for name in set(skipped) - self.clashes:
            log.error("governance: the shared key or team %r clashes with another of this file's names: not merged", name)
            self.clashes.add(name)
        if written:
            self.keyring.refresh()
            log.info("governance: %d key or team record(s) merged from Redis in %.1f ms", written, (time.monotonic() - started) * 1000)
        self.merged = version


def _record(data):
    """A published record, or None for anything else in the hash (not ours, malformed)."""
    try:
        record = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(record, dict):
        return None
    columns = {"team": TEAM_RECORD, "key": KEY_RECORD}.get(record.get("kind"))
    if columns is None or not all(c in record for c in columns):
        return None
    for column in columns:
        value = record[column]
        if isinstance(value, bool) or not isinstance(value, SHAPES.get(column, NUMBER_OR_NONE)):
            return None
    if record["models"] is not None and not all(isinstance(m, str) for m in record["models"]):
        return None
    if record["kind"] == "key":
        try:
            if len(bytes.fromhex(record["hash"])) != 32:
                return None
        except (TypeError, ValueError):
            return None
    return record
