-- Renew a running run's leases, only where they still exist. ARGV: prefix, id, tenant, tool, lease ttl ms.
local id, tenant, tool = ARGV[2], ARGV[3], ARGV[4]
local expiry = now + tonumber(ARGV[5])
redis.call('ZADD', P .. 'lease:' .. tenant, 'XX', expiry, id)
redis.call('ZADD', P .. 'lease:' .. tenant .. ':' .. tool, 'XX', expiry, id)
return redis.call('ZADD', P .. 'leases', 'XX', 'CH', expiry, id)
