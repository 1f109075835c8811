-- Move waiting run messages out of the Celery queue into their tenants' waiting lists, oldest first.
-- ARGV: prefix, queue key, then groups of (raw message, task id, tenant, envelope). A message another consumer
-- took meanwhile (LREM finds nothing) or one already leased, dispatched, parked or done stays where it is.
-- Returns {id, ahead, id, ahead, ...} of the runs it parked.
local queue = ARGV[2]
local parked = {}
for i = 3, #ARGV, 4 do
  local raw, id, tenant, envelope = ARGV[i], ARGV[i + 1], checked(ARGV[i + 2]), ARGV[i + 3]
  local known = redis.call('ZSCORE', P .. 'leases', id) or redis.call('ZSCORE', P .. 'dispatching', id)
    or redis.call('HEXISTS', P .. 'parked', id) == 1 or redis.call('EXISTS', P .. 'done:' .. id) == 1
  if not known and redis.call('LREM', queue, -1, raw) == 1 then
    table.insert(parked, id)
    table.insert(parked, park(id, tenant, envelope, false))
  end
end
return parked
