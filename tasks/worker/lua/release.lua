-- End a run's hold on fair share and pick what may start now. ARGV: prefix, id ('' = none), tenant, tool
-- ('' = the parked envelope's), default cap, lease ttl ms, budget, how long to remember it ran (ms, 0 = it did
-- not finish), 1 = forget its parked envelope too (0: it just parked behind an identical run), the hosts' default
-- cap and budget (cap 0: politeness off). Returns the picked ids.
local id, tenant, tool = ARGV[2], ARGV[3], ARGV[4]
local default_cap, ttl, budget = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local done_ms, envelope_too = tonumber(ARGV[8]), ARGV[9] == '1'
local host_running, host_rps = tonumber(ARGV[10]), tonumber(ARGV[11])
if id ~= '' then
  if tenant ~= '' then checked(tenant); checked(tool) end
  if done_ms > 0 then
    -- A later copy of this message (a re-dispatch whose first copy also arrived) must not run it again.
    redis.call('SET', P .. 'done:' .. id, 1, 'PX', done_ms)
  end
  forget(id, tenant, tool, envelope_too)
end
return pick(default_cap, ttl, budget, host_running, host_rps)
