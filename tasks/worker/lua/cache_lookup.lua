-- The result cache: look up, lead or wait, atomically. KEYS: entry, flight, waiters, parked hash, dispatching,
-- flights set, unsent. ARGV: task id, envelope, max age ms, flight ttl ms. Returns {1, result, stored_at, source}
-- on a hit, {2, leader} when parked behind an identical run, {0, now} when this run leads (runs the tool).
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
