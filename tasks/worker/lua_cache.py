"""The result cache's Lua scripts: look up or lead or wait, atomically; finish a flight and hand its waiters back."""

from __future__ import annotations

# KEYS: entry, flight, waiters, parked hash, dispatching, flights set, unsent.
# ARGV: task id, envelope, max age ms, flight ttl ms. Returns {1, result, stored_at, source} on a hit,
# {2, leader} when parked behind an identical run, {0} when this run leads (runs the tool).
LOOKUP = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local id = ARGV[1]
local mine = redis.call('HGET', KEYS[4], id)
if mine and cjson.decode(mine)['waiting_in'] == KEYS[3] then
  redis.call('HDEL', KEYS[4], id)
  redis.call('ZREM', KEYS[5], id)
  redis.call('ZREM', KEYS[7], id)
end
local e = redis.call('HMGET', KEYS[1], 'result', 'stored_at', 'source')
if e[1] and now - tonumber(e[2]) <= tonumber(ARGV[3]) then return {1, e[1], e[2], e[3]} end
local leader = redis.call('GET', KEYS[2])
if leader and leader ~= id then
  redis.call('RPUSH', KEYS[3], id)
  redis.call('HSET', KEYS[4], id, ARGV[2])
  redis.call('SADD', KEYS[6], KEYS[2])
  return {2, leader}
end
redis.call('SET', KEYS[2], id, 'PX', ARGV[4])
return {0, now}
"""

# KEYS: flight, waiters, dispatching, flights set, unsent. ARGV: task id ('' = the flight is dead, whoever led it).
# Ends the flight and returns its waiters, marked dispatching and unsent until published (parking.dispatch): a
# publish lost with its worker is redone by the safety net.
FINISH = """
local leader = redis.call('GET', KEYS[1])
if ARGV[1] ~= '' and leader ~= ARGV[1] then return {} end
if ARGV[1] == '' and leader then return {} end
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[4], KEYS[1])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000
local ids = redis.call('LRANGE', KEYS[2], 0, -1)
redis.call('DEL', KEYS[2])
for _, id in ipairs(ids) do
  redis.call('ZADD', KEYS[3], now, id)
  redis.call('ZADD', KEYS[5], now, id)
end
return ids
"""
