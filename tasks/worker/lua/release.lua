-- Release a run's lease (if any) and pick what may start now. ARGV: prefix, id ('' = none), tenant, tool,
-- default cap, lease ttl ms, budget, how long to remember it ran (ms, 0 = it did not finish). Returns the picked task ids.
local id, tenant, tool = ARGV[2], ARGV[3], ARGV[4]
local default_cap, ttl, budget = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local done_ms = tonumber(ARGV[8])
if id ~= '' and done_ms > 0 then
  -- A later copy of this message (a re-dispatch whose first copy also arrived) must not run it again.
  redis.call('SET', P .. 'done:' .. id, 1, 'PX', done_ms)
end
if id ~= '' then
  redis.call('ZREM', P .. 'lease:' .. tenant, id)
  redis.call('ZREM', P .. 'lease:' .. tenant .. ':' .. tool, id)
  redis.call('ZREM', P .. 'leases', id)
  redis.call('ZREM', P .. 'dispatching', id)
end
return pick(default_cap, ttl, budget)
