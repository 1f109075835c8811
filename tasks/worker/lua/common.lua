-- Shared by the fair-share scripts. P: key prefix. Leases are sorted sets scored by their expiry (ms).
local P = ARGV[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

-- Tenant ids and tool names build key names: only what plan_run accepts ([A-Za-z0-9_-]{1,64}) may, so
-- no value can name another tenant's keys ('acme:nmap' is refused, never read as acme's nmap leases).
local function checked(value)
  if type(value) ~= 'string' or #value < 1 or #value > 64 or string.find(value, '[^%w_%-]') then
    error('invalid identifier: ' .. tostring(value))
  end
  return value
end

local function live(key)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  return redis.call('ZCARD', key)
end

local function cap_of(tenant, default_cap)
  local c = redis.call('HGET', P .. 'limits', tenant)
  if c then return tonumber(c) end
  return default_cap
end

local function tool_cap_of(tenant, tool)
  local c = redis.call('HGET', P .. 'limits', tenant .. ':' .. tool)
  if c then return tonumber(c) end
  return nil
end

local function capacity()
  -- The worker slots of live workers; 0 (none registered) means no global bound.
  redis.call('ZREMRANGEBYSCORE', P .. 'workers', '-inf', now)
  local total = 0
  for _, member in ipairs(redis.call('ZRANGE', P .. 'workers', 0, -1)) do
    total = total + tonumber(string.match(member, '|(%d+)$'))
  end
  return total
end

local function fits(tenant, tool, default_cap)
  if live(P .. 'lease:' .. tenant) >= cap_of(tenant, default_cap) then return false end
  local tcap = tool_cap_of(tenant, tool)
  if tcap and live(P .. 'lease:' .. tenant .. ':' .. tool) >= tcap then return false end
  return true
end

local function lease(id, tenant, tool, ttl)
  local expiry = now + ttl
  redis.call('ZADD', P .. 'lease:' .. tenant, expiry, id)
  redis.call('ZADD', P .. 'lease:' .. tenant .. ':' .. tool, expiry, id)
  redis.call('ZADD', P .. 'leases', expiry, id)
  redis.call('ZADD', P .. 'tenants', now, tenant)  -- seen lately: the per-tenant gauges look only at these
end

-- The ring holds each tenant with waiting runs once (the set ringed says who is in it): a cancel that empties
-- a tenant's list and a resubmit cannot put it in twice, and a pick walks at most the tenants waiting.
local function ring_add(tenant)
  if redis.call('SADD', P .. 'ringed', tenant) == 1 then redis.call('RPUSH', P .. 'ring', tenant) end
end

local function ring_drop(tenant)
  redis.call('LREM', P .. 'ring', 0, tenant)
  redis.call('SREM', P .. 'ringed', tenant)
end

-- Pick parked runs round-robin across the tenants of the ring while global slots are free; each picked
-- run gets its lease now (so nobody takes the slot before its message arrives) and is marked dispatching.
local function pick(default_cap, ttl, budget)
  local picked = {}
  local misses = 0
  local free = capacity()
  local bounded = free > 0
  if bounded then free = free - live(P .. 'leases') end
  while (not bounded or free > 0) and budget > 0 and misses < redis.call('LLEN', P .. 'ring') do
    local tenant = redis.call('LPOP', P .. 'ring')
    redis.call('LREM', P .. 'ring', 0, tenant)  -- a second place (a ring written before 'ringed' existed) goes
    local waiting = P .. 'wait:' .. tenant
    local chosen = nil
    -- FIFO within a tenant; a head blocked only by its tool's cap lets one of the next 8 runs go.
    for _, id in ipairs(redis.call('LRANGE', waiting, 0, 7)) do
      local raw = redis.call('HGET', P .. 'parked', id)
      if raw then
        local tool = cjson.decode(raw)['tool']
        if fits(tenant, tool, default_cap) then chosen = id; lease(id, tenant, tool, ttl); break end
        if live(P .. 'lease:' .. tenant) >= cap_of(tenant, default_cap) then break end
      else
        redis.call('LREM', waiting, 1, id)  -- discarded meanwhile
      end
    end
    if chosen then
      redis.call('LREM', waiting, 1, chosen)
      redis.call('ZADD', P .. 'dispatching', now, chosen)
      redis.call('ZADD', P .. 'unsent', now, chosen)  -- until its picker has published it (parking.dispatch)
      table.insert(picked, chosen)
      free = free - 1
      budget = budget - 1
      misses = 0
    else
      misses = misses + 1
    end
    if redis.call('LLEN', waiting) > 0 then
      redis.call('RPUSH', P .. 'ring', tenant)
      redis.call('SADD', P .. 'ringed', tenant)
    else
      redis.call('SREM', P .. 'ringed', tenant)
    end
  end
  return picked
end

local function park(id, tenant, envelope, at_head)
  local waiting = P .. 'wait:' .. tenant
  local ahead = redis.call('LLEN', waiting)
  ring_add(tenant)
  if at_head then redis.call('LPUSH', waiting, id); ahead = 0 else redis.call('RPUSH', waiting, id) end
  redis.call('HSET', P .. 'parked', id, envelope)
  redis.call('ZADD', P .. 'parked_at', 'NX', now, id)
  redis.call('ZADD', P .. 'tenants', now, tenant)
  return ahead
end

-- Everything a run id holds in fair share, gone in one step: its envelope (and its place in the list it
-- waits in), parking time, republish count, leases, dispatching and unsent marks. Any way a run ends comes here.
local function forget(id, tenant, tool, envelope_too)
  local raw = redis.call('HGET', P .. 'parked', id)
  if raw and envelope_too then
    local envelope = cjson.decode(raw)
    if tenant == '' then tenant, tool = envelope['tenant_id'], envelope['tool'] end
    local waiting_in = envelope['waiting_in'] or ''
    if waiting_in ~= '' and redis.call('LREM', waiting_in, 0, id) > 0
        and waiting_in == P .. 'wait:' .. tenant and redis.call('LLEN', waiting_in) == 0 then
      ring_drop(tenant)
    end
    redis.call('HDEL', P .. 'parked', id)
    redis.call('ZREM', P .. 'parked_at', id)
  end
  redis.call('HDEL', P .. 'republished', id)
  if tenant ~= '' then
    redis.call('ZREM', P .. 'lease:' .. tenant, id)
    redis.call('ZREM', P .. 'lease:' .. tenant .. ':' .. tool, id)
  end
  redis.call('ZREM', P .. 'leases', id)
  redis.call('ZREM', P .. 'dispatching', id)
  redis.call('ZREM', P .. 'unsent', id)
end

-- A parked run's message arrived and it runs (or parks afresh): its parked state goes, its lease stays.
local function admitted(id)
  redis.call('ZREM', P .. 'dispatching', id)
  redis.call('ZREM', P .. 'unsent', id)
  redis.call('HDEL', P .. 'parked', id)
  redis.call('ZREM', P .. 'parked_at', id)
  redis.call('HDEL', P .. 'republished', id)
end
