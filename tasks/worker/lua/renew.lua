-- Renew a running run's leases. ARGV: prefix, id, tenant, tool, lease ttl ms, default cap, the hosts' default cap
-- and budget (cap 0: politeness off), the run's envelope (its host keys), the rate it was given (0: none).
-- Returns 1 (renewed), 2 (its lease had expired, e.g. Redis was away, and it took a free slot again) or 0 (it
-- expired and the tenant, the workers or one of its hosts are full now: the run must stop and go back, not run
-- on uncounted).
local id, tenant, tool = ARGV[2], checked(ARGV[3]), checked(ARGV[4])
local ttl, default_cap = tonumber(ARGV[5]), tonumber(ARGV[6])
local host_running, host_rps, envelope = tonumber(ARGV[7]), tonumber(ARGV[8]), ARGV[9]
live(P .. 'leases')
if redis.call('ZSCORE', P .. 'leases', id) then
  lease(id, tenant, tool, ttl)
  host_renew(id, ttl)
  return 1
end
local cap, workers = capacity()
if not ((workers == 0 or live(P .. 'leases') < cap) and fits(tenant, tool, default_cap)) then return 0 end
-- Its host leases expired with it. The tool runs at the rate it was given (its own record, or what the worker
-- remembers when Redis lost that too): it takes them again at that rate, or goes back.
local held = redis.call('HGET', P .. 'hostheld', id)
local grant = held and tonumber(cjson.decode(held)['r']) or tonumber(ARGV[10] or 0)
local hosts = cjson.decode(envelope)['hosts']
host_forget(id, nil)
if host_running > 0 and grant > 0 and type(hosts) == 'table' and #hosts > 0 then
  if hosts_blocked(id, hosts, grant, host_running, host_rps) then return 0 end
  host_lease(id, hosts, grant, ttl)
end
lease(id, tenant, tool, ttl)
return 2
