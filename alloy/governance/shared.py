"""Limits and budgets shared by several gateways through Redis (``[governance] redis_url``).

Each key and team is one Redis hash (``alloy:gov:<id>``) holding what ``alloy.governance.counters``
holds locally: the request and token windows, requests in flight, the budget period and its spend.
A decision is one Lua script run atomically in Redis (check every limit of the key and its team,
then count the call in all of them, or in none), timed by Redis' own clock so every host agrees on
the windows; the release at the end of the call is another (fire and forget). So a keyed request
costs one network round trip before it goes upstream: asynchronous (the event loop serves others
meanwhile), measured by the benchmark, and exact across every gateway that shares the Redis.

When Redis does not answer within ``redis_timeout`` (refused, reset, silent), the gate decides
with the local counters of this server instead (``fail_mode = "open"``: still limited, per server)
or refuses keyed requests with 503 (``fail_mode = "closed"``); it says so once in the log, stays
local for ``RETRY_AFTER`` seconds, then tries Redis again by itself and says when it is back.
Calls admitted by Redis are released in Redis; a release that cannot reach it is lost (the in-flight
count of that key stays one too high until the window's hash is rewritten by a later release).
"""

import asyncio
import logging
import time

log = logging.getLogger("alloy.governance")
RETRY_AFTER = 1.0  # seconds of local decisions after a Redis failure, before trying it again
PREFIX = "alloy:gov:"

ADMIT = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local reserve = tonumber(ARGV[1])
local state = {}
for i, key in ipairs(KEYS) do
  local b = 1 + (i - 1) * 5
  local rpm, tpm, par = tonumber(ARGV[b + 1]), tonumber(ARGV[b + 2]), tonumber(ARGV[b + 3])
  local budget, period = tonumber(ARGV[b + 4]), tonumber(ARGV[b + 5])
  local v = redis.call('HMGET', key, 'rs', 'rc', 'ts', 'tu', 'inf', 'per', 'sp')
  local rs, rc, ts, tu = tonumber(v[1]) or 0, tonumber(v[2]) or 0, tonumber(v[3]) or 0, tonumber(v[4]) or 0
  local inf, per, sp = tonumber(v[5]) or 0, tonumber(v[6]) or -1, tonumber(v[7]) or 0
  if now - rs >= 60000 then rs = now; rc = 0 end
  if now - ts >= 60000 then ts = now; tu = 0 end
  if per ~= period then per = period; sp = 0 end
  if rpm > 0 and rc >= rpm then return {0, i, 'requests', rs + 60000 - now, now, rs, rc, ts, tu} end
  if tpm > 0 and tu + reserve > tpm then return {0, i, 'tokens', ts + 60000 - now, now, rs, rc, ts, tu} end
  if par > 0 and inf >= par then return {0, i, 'parallel', 1000, now, rs, rc, ts, tu} end
  if budget > 0 and sp >= budget then return {0, i, 'budget', sp, now, rs, rc, ts, tu} end
  state[i] = {rs, rc + 1, ts, tu + reserve, inf + 1, per, sp}
end
local out = {1, now}
for i, key in ipairs(KEYS) do
  local s = state[i]
  redis.call('HSET', key, 'rs', s[1], 'rc', s[2], 'ts', s[3], 'tu', s[4], 'inf', s[5], 'per', s[6], 'sp', s[7])
  for j = 1, 4 do table.insert(out, s[j]) end
end
return out
"""

RELEASE = """
local used, reserved = tonumber(ARGV[1]), tonumber(ARGV[2])
for i, key in ipairs(KEYS) do
  local b = 2 + (i - 1) * 3
  local window, period, cost = tonumber(ARGV[b + 1]), tonumber(ARGV[b + 2]), tonumber(ARGV[b + 3])
  local v = redis.call('HMGET', key, 'ts', 'tu', 'inf', 'per', 'sp')
  local ts, tu, inf = tonumber(v[1]) or 0, tonumber(v[2]) or 0, tonumber(v[3]) or 0
  local per, sp = tonumber(v[4]) or -1, tonumber(v[5]) or 0
  if ts == window then tu = math.max(tu + used - reserved, 0) end
  if per ~= period then per = period; sp = 0 end
  redis.call('HSET', key, 'tu', tu, 'inf', math.max(inf - 1, 0), 'per', per, 'sp', sp + cost)
end
return 1
"""


def redacted(url):
    scheme, sep, rest = url.partition("://")
    return scheme + sep + rest.rpartition("@")[2]


class SharedCounters:
    def __init__(self, url, timeout):
        import redis.asyncio  # imported only when a Redis URL is configured
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        self.errors = (redis.RedisError, OSError, asyncio.TimeoutError)
        # One immediate retry on a connection error: after Redis restarts, each pooled connection
        # fails once (it was reset) before a new one is opened. A timeout is not retried.
        self.client = redis.asyncio.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout, retry_on_timeout=False,
            retry=Retry(NoBackoff(), 1), retry_on_error=[redis.ConnectionError],
        )  # fmt: skip
        self.timeout = timeout
        self.admit_script = self.client.register_script(ADMIT)
        self.release_script = self.client.register_script(RELEASE)
        self.down_until = 0.0  # monotonic time before which decisions stay local
        self.url = redacted(url)  # for the log: never a password

    def usable(self, now):
        return now >= self.down_until

    def failed(self, error):
        if not self.down_until:
            log.error("governance: Redis at %s failed (%s): deciding with local limits", self.url, type(error).__name__)
        self.down_until = time.monotonic() + RETRY_AFTER

    def recovered(self):
        if self.down_until:
            log.warning("governance: Redis at %s answers again: limits are shared again", self.url)
            self.down_until = 0.0

    async def admit(self, key, reserve, wall):
        args = [reserve]
        for scope in key.scopes:
            args += [scope.rpm, scope.tpm, scope.max_parallel, scope.budget, scope.period_index(wall)]
        keys = [PREFIX + scope.id for scope in key.scopes]
        return await asyncio.wait_for(self.admit_script(keys=keys, args=args), self.timeout)

    async def release(self, key, reserved, used, windows, cost, wall):
        args = [used, reserved]
        for scope, window in zip(key.scopes, windows):
            args += [window, scope.period_index(wall), cost]
        keys = [PREFIX + scope.id for scope in key.scopes]
        await asyncio.wait_for(self.release_script(keys=keys, args=args), self.timeout)

    async def close(self):
        await self.client.aclose()
