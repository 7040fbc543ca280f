"""Limits and budgets shared by several gateways through Redis (``[governance] redis_url``).

Each key and team is one Redis hash (``alloy:gov:<id>``) holding what ``alloy.governance.counters``
holds locally: the request and token windows, requests in flight, the budget period and its spend
(``spn``, nano-USD; a hash an older Alloy left with ``sp``, micro-USD, is seeded again from the ledger).
A decision is one Lua script run atomically in Redis (check every limit of the key and its team,
then count the call in all of them, or in none), timed by Redis' own clock so every host agrees on
the windows; the release at the end of the call is another (fire and forget). So a keyed request
costs one network round trip before it goes upstream: asynchronous (the event loop serves others
meanwhile), measured by the benchmark, and exact across every gateway that shares the Redis.

When Redis does not answer within ``redis_timeout`` (refused, reset, silent), the gate decides
with the local counters of this server instead (``fail_mode = "open"``: still limited, per server)
or refuses keyed requests with 503 (``fail_mode = "closed"``); it says so once in the log, stays
local for ``RETRY_AFTER`` seconds, then tries Redis again by itself and says when it is back.
Calls admitted by Redis are released in Redis.

Requests in flight are leases, so a release that never arrives heals itself: each key's and team's
calls in flight are a sorted set (``alloy:gov:<id>:inflight``) of request ids scored by a deadline
on Redis' clock. The admit script drops the expired ones, counts the rest against ``max_parallel``
and adds the new call with a deadline ``inflight_lease`` ahead; the release script removes it. While
calls last, this gateway renews the leases of all it holds every third of the lease (one round trip
for all of them, none per request), so a long stream keeps its slot. A release that cannot reach
Redis, a gateway killed with calls in flight, an admit whose answer timed out after Redis counted
it: no one renews those leases, and each slot frees itself within ``inflight_lease`` (30 s).
Which of a key's leases a release removes does not matter (the gateway renews all it holds): it
keeps request ids per set of scopes and gives back any one of them.

What is spent while Redis is out of reach reaches it when it answers again. A call decided with the
local counters (fail_mode open), and a call whose release could not be delivered (refused or reset,
not timed out: Redis may yet run a release that timed out), leave their cost owed, per key and
team and budget period; a call decided locally also owes its request and its tokens to the minute
windows (also when its admit timed out: Redis may yet run that admit and count it twice, but it
mostly does not, the connection being dropped with the cancelled command). Before
Redis makes its next decision, one script pays what is owed (``PAY``; every admit waiting then
waits for that one payment, so the first decisions after an outage see it): the spend into each
hash that holds that period's, the requests and tokens of the last minute into the current
windows. A period that ended meanwhile is not paid into the next; a hash Redis lost is seeded from
the ledger instead (below), which holds those calls too.

Spend in Redis is lost when Redis restarts without persistence. The admit script notices a key or
team whose hash has no spend and asks for it (answer ``2``, nothing counted) instead of starting
from zero; the gateway reads the period's spend from its own ledger (``spend_of``) and runs the
script again with it, which keeps the first seed written (another gateway may have seeded it
first). A release that finds the hash gone writes no spend, so the next admit still seeds (the
ledger has that call by then, unless it ended within the last ``flush_interval``).
"""

import asyncio
import itertools
from collections import deque
import logging
import os
import time

log = logging.getLogger("alloy.governance")
RETRY_AFTER = 1.0  # seconds of local decisions after a Redis failure, before trying it again
PREFIX = "alloy:gov:"
LEASES = ":inflight"  # after PREFIX + the scope's id: its calls in flight, scored by deadline

# A budget period as Redis names it: its length and its number, in one number the Lua scripts
# compare (exact in a Lua double: lengths up to 2**32 s, numbers kept modulo 2**21). Numbers of two
# lengths do not compare: a hash that holds a period of another length (the key's budget_period
# changed) is seeded again from the ledger, as one Redis lost.
PERIOD_NUMBERS = 2**21


def period_identity(scope, wall):
    return int(scope.period) * PERIOD_NUMBERS + scope.period_index(wall) % PERIOD_NUMBERS


ADMIT = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local reserve = tonumber(ARGV[1])
local lease, member = tonumber(ARGV[#ARGV - 1]), ARGV[#ARGV]
local scopes = #KEYS / 2
local missing = {2}  -- scopes whose spend Redis does not hold (restarted empty): seeds wanted
for i = 1, scopes do
  if tonumber(ARGV[i * 6 + 1]) < 0 then
    local held = redis.call('HMGET', KEYS[i], 'per', 'spn')
    -- no spend held, or held for a period of another length (the key's budget_period changed)
    if not held[2] or math.floor((tonumber(held[1]) or -1) / PERIOD_NUMBERS) ~= math.floor(tonumber(ARGV[i * 6]) / PERIOD_NUMBERS) then
      table.insert(missing, i)
    end
  end
end
if #missing > 1 then return missing end
local state = {}
for i = 1, scopes do
  local key, leases = KEYS[i], KEYS[scopes + i]
  local b = 1 + (i - 1) * 6
  local rpm, tpm, par = tonumber(ARGV[b + 1]), tonumber(ARGV[b + 2]), tonumber(ARGV[b + 3])
  local budget, period, seed = tonumber(ARGV[b + 4]), tonumber(ARGV[b + 5]), tonumber(ARGV[b + 6])
  local v = redis.call('HMGET', key, 'rs', 'rc', 'ts', 'tu', 'per', 'spn')
  local rs, rc, ts, tu = tonumber(v[1]) or 0, tonumber(v[2]) or 0, tonumber(v[3]) or 0, tonumber(v[4]) or 0
  local per, sp = tonumber(v[5]) or -1, tonumber(v[6]) or 0
  local other_length = math.floor(per / PERIOD_NUMBERS) ~= math.floor(period / PERIOD_NUMBERS)
  if not v[6] or (seed >= 0 and other_length) then  -- the period's spend, as the gateway's ledger knows it; kept even if refused
    per = period; sp = seed
    redis.call('HSET', key, 'per', per, 'spn', sp)
  end
  redis.call('ZREMRANGEBYSCORE', leases, '-inf', now)  -- leases nobody renewed: lost releases
  local inf = redis.call('ZCARD', leases)
  if now - rs >= 60000 then rs = now; rc = 0 end
  if now - ts >= 60000 then ts = now; tu = 0 end
  if per ~= period then per = period; sp = 0 end
  if rpm > 0 and rc >= rpm then return {0, i, 'requests', rs + 60000 - now, now, rs, rc, ts, tu} end
  if tpm > 0 and tu + reserve > tpm then return {0, i, 'tokens', ts + 60000 - now, now, rs, rc, ts, tu} end
  if par > 0 and inf >= par then return {0, i, 'parallel', 1000, now, rs, rc, ts, tu} end
  if budget > 0 and sp >= budget then return {0, i, 'budget', sp, now, rs, rc, ts, tu} end
  state[i] = {rs, rc + 1, ts, tu + reserve, per, sp}
end
local out = {1, now}
for i = 1, scopes do
  local s = state[i]
  redis.call('HSET', KEYS[i], 'rs', s[1], 'rc', s[2], 'ts', s[3], 'tu', s[4], 'per', s[5], 'spn', s[6])
  redis.call('ZADD', KEYS[scopes + i], now + lease, member)
  redis.call('PEXPIRE', KEYS[scopes + i], lease)  -- no deadline in the set is later than this
  for j = 1, 4 do table.insert(out, s[j]) end
end
return out
""".replace("PERIOD_NUMBERS", str(PERIOD_NUMBERS))  # the one definition, above

RELEASE = """
local used, reserved = tonumber(ARGV[1]), tonumber(ARGV[2])
local member = ARGV[#ARGV]
local scopes = #KEYS / 2
for i = 1, scopes do
  local key = KEYS[i]
  local b = 2 + (i - 1) * 3
  local window, period, cost = tonumber(ARGV[b + 1]), tonumber(ARGV[b + 2]), tonumber(ARGV[b + 3])
  local v = redis.call('HMGET', key, 'ts', 'tu', 'per', 'spn')
  if v[4] then  -- else Redis lost the hash since the admit: the next admit seeds it from the ledger
    local ts, tu = tonumber(v[1]) or 0, tonumber(v[2]) or 0
    local per, sp = tonumber(v[3]) or -1, tonumber(v[4]) or 0
    if ts == window then tu = math.max(tu + used - reserved, 0) end
    -- a newer period of the same length starts from zero; a release from an earlier one (a call
    -- across the boundary) or from before the period's length changed counts in the current one
    if per ~= period and math.floor(per / PERIOD_NUMBERS) == math.floor(period / PERIOD_NUMBERS) and period > per then
      per = period; sp = 0
    end
    redis.call('HSET', key, 'tu', tu, 'per', per, 'spn', sp + cost)
  end
  redis.call('ZREM', KEYS[scopes + i], member)
end
return 1
""".replace("PERIOD_NUMBERS", str(PERIOD_NUMBERS))  # the one definition, above

PAY = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
for i, key in ipairs(KEYS) do
  local b = (i - 1) * 4
  local period, cost = tonumber(ARGV[b + 1]), tonumber(ARGV[b + 2])
  local requests, tokens = tonumber(ARGV[b + 3]), tonumber(ARGV[b + 4])
  local v = redis.call('HMGET', key, 'per', 'spn', 'rs', 'rc', 'ts', 'tu')
  if cost > 0 and v[2] and tonumber(v[1]) == period then redis.call('HSET', key, 'spn', tonumber(v[2]) + cost) end
  if requests > 0 then  -- into the current minute, or one that starts now
    local rs, rc = tonumber(v[3]) or 0, tonumber(v[4]) or 0
    if now - rs >= 60000 then rs = now; rc = 0 end
    redis.call('HSET', key, 'rs', rs, 'rc', rc + requests)
  end
  if tokens > 0 then
    local ts, tu = tonumber(v[5]) or 0, tonumber(v[6]) or 0
    if now - ts >= 60000 then ts = now; tu = 0 end
    redis.call('HSET', key, 'ts', ts, 'tu', tu + tokens)
  end
end
return 1
"""
WINDOW = 60.0  # seconds of a minute window: requests and tokens owed longer ago count nowhere


class Debt:
    """What a key or team owes Redis: the spend of one budget period (nano-USD), and the requests
    and tokens counted here meanwhile, per second of ``time.monotonic()`` (``[second, requests,
    tokens]``, the last minute's only: however long an outage, at most ~60 of them)."""

    __slots__ = ("period", "cost", "counted")

    def __init__(self, period):
        self.period, self.cost, self.counted = period, 0, deque()

    def count(self, now, requests, tokens):
        second = int(now)
        counted = self.counted
        if counted and counted[-1][0] == second:
            counted[-1][1] += requests
            counted[-1][2] += tokens
        else:
            counted.append([second, requests, tokens])
            while counted[0][0] <= second - WINDOW:
                counted.popleft()

    def recent(self, now):
        """(requests, tokens) counted in the last minute."""
        since = now - WINDOW - 1  # a second's bucket counts while any of it is within the minute
        recent = [entry for entry in self.counted if entry[0] > since]
        return sum(entry[1] for entry in recent), sum(entry[2] for entry in recent)

    def add(self, other):
        """``other``, an older debt of the same scope (a payment that failed), added back."""
        if other.period == self.period:
            self.cost += other.cost
        self.counted.extendleft(reversed(other.counted))

RENEW = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local lease = tonumber(ARGV[1])
local at = 2
for i, leases in ipairs(KEYS) do
  local count = tonumber(ARGV[at])
  for j = 1, count do
    redis.call('ZADD', leases, 'XX', now + lease, ARGV[at + j])  -- XX: a released call stays released
  end
  at = at + count + 1
  redis.call('PEXPIRE', leases, lease)
end
return 1
"""


def redacted(url):
    scheme, sep, rest = url.partition("://")
    return scheme + sep + rest.rpartition("@")[2]


class SharedCounters:
    def __init__(self, url, timeout, lease=30.0, spend_of=None, fail_mode="open"):
        import redis.asyncio  # imported only when a Redis URL is configured
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        self.errors = (redis.RedisError, OSError, asyncio.TimeoutError)
        self.timeouts = (redis.TimeoutError, asyncio.TimeoutError)  # sent, perhaps run, unanswered
        # One immediate retry on a connection error: after Redis restarts, each pooled connection
        # fails once (it was reset) before a new one is opened. A timeout is not retried.
        self.client = redis.asyncio.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout, retry_on_timeout=False,
            retry=Retry(NoBackoff(), 1), retry_on_error=[redis.ConnectionError],
        )  # fmt: skip
        self.timeout = timeout
        self.fail_mode = fail_mode  # what the log says the gateway does meanwhile
        self.admit_script = self.client.register_script(ADMIT)
        self.release_script = self.client.register_script(RELEASE)
        self.renew_script = self.client.register_script(RENEW)
        self.pay_script = self.client.register_script(PAY)
        self.owed = {}  # scope id -> its Debt: what Redis lacks of this gateway's decisions
        self.paying = None  # the task delivering ``owed``
        self.down_until = 0.0  # monotonic time before which decisions stay local
        self.url = redacted(url)  # for the log: never a password
        self.lease = lease  # seconds (``[governance] inflight_lease``)
        self.held = {}  # (each scope's lease set) -> request ids of this gateway's calls in flight
        self.ids = itertools.count()
        self.instance = os.urandom(6).hex()  # request ids unique across gateways and restarts
        self.renewal = None  # the timer of the next renewal while calls are held
        # nano-USD a key or team spent this period as far as this gateway knows: what seeds a
        # Redis that lost it (``alloy.governance.keyring.ledger_spend`` on the gateway's store)
        self.spend_of = spend_of or (lambda scope, wall: 0)

    def usable(self, now):
        return now >= self.down_until

    def failed(self, error):
        if not self.down_until:
            meanwhile = "deciding with local limits" if self.fail_mode == "open" else "refusing keyed requests (fail_mode closed)"
            log.error("governance: Redis at %s failed (%s): %s", self.url, type(error).__name__, meanwhile)
        self.down_until = time.monotonic() + RETRY_AFTER

    def recovered(self):
        if self.down_until:
            log.warning("governance: Redis at %s answers again: limits are shared again", self.url)
            self.down_until = 0.0

    def owe(self, key, wall, cost=0, requests=0, tokens=0):
        """``key`` spent ``cost`` (nano-USD), or was counted ``requests`` and ``tokens``, without
        Redis counting it: owed to each of its scopes (spend of an earlier budget period is
        dropped: that period ended)."""
        if not (cost or requests or tokens):
            return
        now = time.monotonic()
        for scope in key.scopes:
            period = period_identity(scope, wall)
            debt = self.owed.get(scope.id)
            if debt is None:
                debt = self.owed[scope.id] = Debt(period)
            elif debt.period != period:
                debt.period, debt.cost = period, 0
            debt.cost += cost
            if requests or tokens:
                debt.count(now, requests, tokens)

    async def _settled(self):
        """What is owed, paid before this decision (one payment for every decision waiting; its
        failure is theirs: they are decided here)."""
        if self.paying is None:
            self.paying = asyncio.ensure_future(self._pay())
        await asyncio.shield(self.paying)

    async def _pay(self):
        owed, self.owed = self.owed, {}
        now = time.monotonic()
        keys, args = [], []
        for scope_id, debt in owed.items():
            requests, tokens = debt.recent(now)
            if debt.cost or requests or tokens:
                keys.append(PREFIX + scope_id)
                args += [debt.period, debt.cost, requests, tokens]
        try:
            if keys:
                await asyncio.wait_for(self.pay_script(keys=keys, args=args), self.timeout)
        except self.errors as error:  # still owed, with what was owed meanwhile
            for scope_id, debt in owed.items():
                newer = self.owed.get(scope_id)
                if newer is None:
                    self.owed[scope_id] = debt
                else:
                    newer.add(debt)
            self.failed(error)
            raise
        finally:
            self.paying = None

    async def admit(self, key, reserve, wall):
        if self.owed or self.paying is not None:
            await self._settled()  # Redis decides knowing what was decided here meanwhile
        scopes = key.scopes
        leases = tuple(PREFIX + scope.id + LEASES for scope in scopes)
        member = f"{self.instance}:{next(self.ids)}"
        keys = [PREFIX + scope.id for scope in scopes] + list(leases)
        seeds = [-1] * len(scopes)  # -1: Redis holds the spend (the common case)
        while True:
            args = [reserve]
            for scope, seed in zip(scopes, seeds):
                args += [scope.rpm, scope.tpm, scope.max_parallel, scope.budget, period_identity(scope, wall), seed]
            args += [int(self.lease * 1000), member]
            result = await asyncio.wait_for(self.admit_script(keys=keys, args=args), self.timeout)
            if result[0] != 2:
                break
            for index in result[1:]:  # Redis lost these scopes' spend: once per scope, a second trip
                seeds[index - 1] = self.spend_of(scopes[index - 1], wall)
                self.owed.pop(scopes[index - 1].id, None)  # the ledger the seed reads holds it
        if result[0] == 1:  # admitted: this gateway renews the lease until the release
            self.held.setdefault(leases, []).append(member)
            if self.renewal is None:
                self.renewal = asyncio.get_running_loop().call_later(self.lease / 3, self._renew_soon)
        return result

    async def release(self, key, reserved, used, windows, cost, wall):
        args = [used, reserved]
        for scope, window in zip(key.scopes, windows):
            args += [window, period_identity(scope, wall), cost]
        leases = tuple(PREFIX + scope.id + LEASES for scope in key.scopes)
        members = self.held.get(leases)
        member = ""  # none held (cannot happen): the release removes no lease
        if members:
            member = members.pop()
            if not members:
                del self.held[leases]
        keys = [PREFIX + scope.id for scope in key.scopes] + list(leases)
        await asyncio.wait_for(self.release_script(keys=keys, args=args + [member]), self.timeout)

    def _renew_soon(self):
        self.renewal = None
        if self.held:
            loop = asyncio.get_running_loop()
            loop.create_task(self._renew())
            self.renewal = loop.call_later(self.lease / 3, self._renew_soon)

    async def _renew(self):
        """One round trip renews every lease this gateway holds (a lease that lapses while Redis is
        out of reach stops counting its call: the limit is laxer by that call, never stuck)."""
        by_set = {}
        for leases, members in self.held.items():
            for name in leases:
                by_set.setdefault(name, set()).update(members)
        args = [int(self.lease * 1000)]
        for members in by_set.values():
            args += [len(members), *members]
        try:
            await asyncio.wait_for(self.renew_script(keys=list(by_set), args=args), self.timeout)
        except self.errors as error:
            self.failed(error)

    async def close(self):
        if self.renewal is not None:
            self.renewal.cancel()
        await self.client.aclose()
