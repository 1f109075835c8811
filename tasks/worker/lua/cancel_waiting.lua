-- End up to a batch of the runs waiting in a tenant's list, from its head, as one step: each leaves the list (one
-- LTRIM for the batch, not an LREM per run), its parked state goes and a done marker drops any later copy of its
-- message. ARGV: prefix, tenant, batch, done ms. Returns {id, envelope, id, envelope, ...} of the runs it ended.
local tenant, batch, done_ms = checked(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local waiting = P .. 'wait:' .. tenant
local ids = redis.call('LRANGE', waiting, 0, batch - 1)
redis.call('LTRIM', waiting, #ids, -1)
local ended = {}
for _, id in ipairs(ids) do
  local raw = redis.call('HGET', P .. 'parked', id)
  if raw then
    redis.call('SET', P .. 'done:' .. id, 1, 'PX', done_ms)
    forget(id, tenant, '', true, true)
    table.insert(ended, id)
    table.insert(ended, raw)
  end
end
if redis.call('LLEN', waiting) == 0 then ring_drop(tenant) end
return ended
