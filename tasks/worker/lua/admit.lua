-- Admit a run or park it. ARGV: prefix, id, tenant, tool, envelope, default cap, lease ttl ms, queue key,
-- 1 = first in line (a message delivered again: its worker died or put it back, so it had its turn already),
-- the hosts' default cap and request budget (cap 0: politeness off).
-- Returns {outcome, ahead, host, rate, picked...}: outcome 1 = admitted, 0 = parked, 2 = a duplicate of a parked
-- run, 3 = a copy of a run that already ended (finished, cancelled or given up); host = the key a parked run
-- waits for ('' = a slot); rate = what the admitted run was given per host ('0' = no host lease).
local id, tenant, tool, envelope = ARGV[2], checked(ARGV[3]), checked(ARGV[4]), ARGV[5]
local default_cap, ttl, queue = tonumber(ARGV[6]), tonumber(ARGV[7]), ARGV[8]
local host_running, host_rps = tonumber(ARGV[10]), tonumber(ARGV[11])
local fields = cjson.decode(envelope)
live(P .. 'leases')
if redis.call('EXISTS', P .. 'done:' .. id) == 1 then return {3, 0, '', '0'} end
local at_head = ARGV[9] == '1'

local function parked_result(ahead, self_blocked)
  local result = {0, ahead, self_blocked or '', '0'}
  for _, picked in ipairs(pick(default_cap, ttl, 64, host_running, host_rps)) do
    if picked == id then
      -- Picked itself: run here rather than publish its own message again.
      admitted(id)
      result[1], result[3], result[4] = 1, '', host_renew(id, ttl)
    else
      table.insert(result, picked)
    end
  end
  if result[1] == 0 then result[3] = redis.call('HGET', P .. 'hostblocked', id) or '' end
  return result
end

if redis.call('ZSCORE', P .. 'leases', id) then
  -- Dispatched to us (its lease was taken at pick time), or a second copy of a running run. Hosts it does not
  -- hold live leases on (not known when it was parked: a run drained from the queue, where names are not
  -- resolved; or a dead life's leftovers) are leased now, or it gives its slot back and parks first in line.
  if host_running > 0 and not host_holds(id, fields['hosts']) then
    host_forget(id, nil)
    local blocked = host_try(id, fields, ttl, host_running, host_rps)
    if blocked then
      forget(id, tenant, tool, false)  -- its slot goes back; its reservations stay (forget is given no hosts)
      redis.call('HSET', P .. 'hostblocked', id, blocked)
      return parked_result(park(id, tenant, envelope, true), blocked)
    end
  end
  lease(id, tenant, tool, ttl)
  admitted(id)
  return {1, 0, '', host_renew(id, ttl)}
end
if redis.call('ZSCORE', P .. 'dispatching', id) then
  -- Dispatched, but its lease ran out before the message arrived: first in line again (it keeps its
  -- parking time and republish count).
  redis.call('ZREM', P .. 'dispatching', id)
  redis.call('ZREM', P .. 'unsent', id)
  redis.call('HDEL', P .. 'parked', id)
  at_head = true
elseif redis.call('HEXISTS', P .. 'parked', id) == 1 then
  return {2, 0, '', '0'}
end
host_forget(id, nil)  -- it holds no lease here: whatever a dead life of it left (kept reservations aside) goes
local waiting = redis.call('LLEN', P .. 'wait:' .. tenant)
local cap, workers = capacity()
local room = workers == 0 or live(P .. 'leases') < cap
-- Straight in only when nobody waits and nothing is queued behind: otherwise park, so that a backlog
-- leaves the queue and free slots go round-robin. Tenant slot and host leases are taken together or not at all.
local blocked = nil
if (at_head or (waiting == 0 and redis.call('LLEN', P .. 'ring') == 0 and redis.call('LLEN', queue) == 0))
    and room and fits(tenant, tool, default_cap) then
  local grant
  blocked, grant = host_try(id, fields, ttl, host_running, host_rps)
  if not blocked then
    lease(id, tenant, tool, ttl)
    return {1, 0, '', tostring(grant)}
  end
end
return parked_result(park(id, tenant, envelope, at_head), blocked)
