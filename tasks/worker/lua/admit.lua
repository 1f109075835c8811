-- Admit a run or park it. ARGV: prefix, id, tenant, tool, envelope, default cap, lease ttl ms, queue key,
-- 1 = first in line (a message delivered again: its worker died or put it back, so it had its turn already).
-- Returns {outcome, ahead, picked...}: outcome 1 = admitted, 0 = parked, 2 = a duplicate of a parked run,
-- 3 = a copy of a run that already ended (finished, cancelled or given up).
local id, tenant, tool, envelope = ARGV[2], checked(ARGV[3]), checked(ARGV[4]), ARGV[5]
local default_cap, ttl, queue = tonumber(ARGV[6]), tonumber(ARGV[7]), ARGV[8]
live(P .. 'leases')
if redis.call('EXISTS', P .. 'done:' .. id) == 1 then return {3, 0} end
local at_head = ARGV[9] == '1'
if redis.call('ZSCORE', P .. 'leases', id) then
  -- Dispatched to us (its lease was taken at pick time), or a second copy of a running run.
  lease(id, tenant, tool, ttl)
  admitted(id)
  return {1, 0}
end
if redis.call('ZSCORE', P .. 'dispatching', id) then
  -- Dispatched, but its lease ran out before the message arrived: first in line again (it keeps its
  -- parking time and republish count).
  redis.call('ZREM', P .. 'dispatching', id)
  redis.call('ZREM', P .. 'unsent', id)
  redis.call('HDEL', P .. 'parked', id)
  at_head = true
elseif redis.call('HEXISTS', P .. 'parked', id) == 1 then
  return {2, 0}
end
local waiting = redis.call('LLEN', P .. 'wait:' .. tenant)
local cap = capacity()
local room = cap == 0 or live(P .. 'leases') < cap
-- Straight in only when nobody waits and nothing is queued behind: otherwise park, so that a backlog
-- leaves the queue and free slots go round-robin.
if (at_head or (waiting == 0 and redis.call('LLEN', P .. 'ring') == 0 and redis.call('LLEN', queue) == 0))
    and room and fits(tenant, tool, default_cap) then
  lease(id, tenant, tool, ttl)
  return {1, 0}
end
local ahead = park(id, tenant, envelope, at_head)
local result = {0, ahead}
for _, picked in ipairs(pick(default_cap, ttl, 64)) do
  if picked == id then
    -- Picked itself: run here rather than publish its own message again.
    admitted(id)
    result[1] = 1
  else
    table.insert(result, picked)
  end
end
return result
