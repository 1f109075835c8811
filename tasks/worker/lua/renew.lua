-- Renew a running run's leases. ARGV: prefix, id, tenant, tool, lease ttl ms, default cap.
-- Returns 1 (renewed), 2 (its lease had expired, e.g. Redis was away, and it took a free slot again) or 0 (it
-- expired and the tenant or the workers are full now: the run must stop and go back, not run on uncounted).
local id, tenant, tool = ARGV[2], checked(ARGV[3]), checked(ARGV[4])
local ttl, default_cap = tonumber(ARGV[5]), tonumber(ARGV[6])
live(P .. 'leases')
if redis.call('ZSCORE', P .. 'leases', id) then
  lease(id, tenant, tool, ttl)
  return 1
end
local cap = capacity()
if (cap == 0 or live(P .. 'leases') < cap) and fits(tenant, tool, default_cap) then
  lease(id, tenant, tool, ttl)
  return 2
end
return 0
