-- End a flight and hand its waiters back. KEYS: flight, waiters, dispatching, flights set, unsent. ARGV: task id
-- ('' = the flight is dead, whoever led it). Returns its waiters, marked dispatching and unsent until published
-- (parking.dispatch): a publish lost with its worker is redone by the safety net.
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
