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
  -- The worker slots of live workers, and how many live workers registered. No worker registered means no global
  -- bound; a worker registered with 0 slots (its disk guard paused it) bounds it.
  redis.call('ZREMRANGEBYSCORE', P .. 'workers', '-inf', now)
  local total, workers = 0, 0
  for _, member in ipairs(redis.call('ZRANGE', P .. 'workers', 0, -1)) do
    total = total + tonumber(string.match(member, '|(%d+)$'))
    workers = workers + 1
  end
  return total, workers
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

-- Host politeness (docs/politeness.md). A run's envelope carries its host keys, each as [text, IP version, first
-- and last address as fixed-width hex, {the keys above it, nearest first}] (tasks/scope/reach.py), the rate its
-- request asks for ('rate', 0 = none) and the least rate its tool can be told ('min_rate'). Per key text:
-- P..'host:'..text, a zset of the runs leasing it scored by expiry; P..'hostrate:'..text, the rate each was
-- given; P..'hostkids:'..text, the keys just below it that hold leases, so a wide key finds its busiest host;
-- P..'hostwant:'..text, the oldest waiting run that needs it (a reservation, so that a run waiting for several
-- hosts, or a wide one, is not starved by a stream of others; the oldest by parking time wins, so reservations
-- never wait on each other in a cycle). P..'hostheld' maps a run to the keys it leases and its rate;
-- P..'hostblocked' a parked run to the key it waits for. Host limits of 0 (ARGV) mean politeness is off.
local overrides = nil

local function host_overrides()
  if overrides == nil then
    overrides = {}
    local raw = redis.call('HGETALL', P .. 'hosts')
    for i = 2, #raw, 2 do
      -- A value that is not one tasks.hosts wrote is skipped, as tasks.hosts' reader skips it (with a warning).
      local ok, o = pcall(cjson.decode, raw[i])
      if ok and type(o) == 'table' and tonumber(o['v']) and type(o['lo']) == 'string'
          and type(o['hi']) == 'string' and tonumber(o['p']) then
        table.insert(overrides, o)
      end
    end
  end
  return overrides
end

local function number_or_nil(value)
  if value == nil or value == cjson.null then return nil end
  return tonumber(value)
end

-- A key's limits, by tasks.hosts.effective's rule: each from the most specific override covering the key that
-- sets it, else the default; then tightened by every narrower override inside the key (a host inside a block).
local function host_limits(key, default_running, default_rps)
  local version, first, last = tonumber(key[2]), key[3], key[4]
  local running, rps, running_prefix, rps_prefix = default_running, default_rps, -1, -1
  local inside_running, inside_rps = nil, nil
  for _, o in ipairs(host_overrides()) do
    if tonumber(o['v']) == version and o['lo'] <= last and first <= o['hi'] then
      local n, r, prefix = number_or_nil(o['n']), number_or_nil(o['r']), tonumber(o['p'])
      if o['lo'] <= first and last <= o['hi'] then  -- covers the key (CIDR networks nest or are disjoint)
        if n and prefix > running_prefix then running, running_prefix = n, prefix end
        if r and prefix > rps_prefix then rps, rps_prefix = r, prefix end
      else  -- inside it
        if n then inside_running = math.min(inside_running or n, n) end
        if r then inside_rps = math.min(inside_rps or r, r) end
      end
    end
  end
  if inside_running then running = math.min(running, inside_running) end
  if inside_rps then rps = math.min(rps, inside_rps) end
  return running, rps
end

-- The live leases on exactly this key: how many, and the sum of their rates (expired ones dropped).
local function host_own(text)
  local key = P .. 'host:' .. text
  local gone = redis.call('ZRANGEBYSCORE', key, '-inf', now)
  if #gone > 0 then
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
    redis.call('HDEL', P .. 'hostrate:' .. text, unpack(gone))
  end
  local count, rate = redis.call('ZCARD', key), 0
  if count > 0 then
    for _, r in ipairs(redis.call('HVALS', P .. 'hostrate:' .. text)) do rate = rate + tonumber(r) end
  end
  return count, rate
end

-- The busiest key below this one: the most runs and the most rate any one host under it sees (each a bound).
local function host_below(text)
  local kids = P .. 'hostkids:' .. text
  local most_runs, most_rate = 0, 0
  for _, kid in ipairs(redis.call('SMEMBERS', kids)) do
    local runs, rate = host_own(kid)
    local below_runs, below_rate = host_below(kid)
    if runs + below_runs == 0 then
      redis.call('SREM', kids, kid)  -- nothing leased under it any more
    else
      most_runs, most_rate = math.max(most_runs, runs + below_runs), math.max(most_rate, rate + below_rate)
    end
  end
  return most_runs, most_rate
end

-- What the hosts of a key see: the runs on it, on every key above it, and on the busiest key below it.
local function host_load(key)
  local runs, rate = host_own(key[1])
  for _, above in ipairs(key[5]) do
    local above_runs, above_rate = host_own(above)
    runs, rate = runs + above_runs, rate + above_rate
  end
  local below_runs, below_rate = host_below(key[1])
  return runs + below_runs, rate + below_rate
end

-- Whether run `a` goes before run `b` for a reservation: parked earlier (a run not parked yet is the youngest),
-- ties by id. A total order: no two runs can each wait for the other's reservation.
local function older(a, b)
  local a_at = tonumber(redis.call('ZSCORE', P .. 'parked_at', a) or now)
  local b_at = tonumber(redis.call('ZSCORE', P .. 'parked_at', b) or now)
  return a_at < b_at or (a_at == b_at and a < b)
end

-- Whether an older run reserved this key or one above it (a block reserved holds its addresses too).
local function reserved_by_older(id, key)
  local holder = redis.call('GET', P .. 'hostwant:' .. key[1])
  if holder and holder ~= id and older(holder, id) then return true end
  for _, above in ipairs(key[5]) do
    holder = redis.call('GET', P .. 'hostwant:' .. above)
    if holder and holder ~= id and older(holder, id) then return true end
  end
  return false
end

-- The rate a run is given: its share of the tightest key (budget / cap), lowered by its request, at least the
-- least its tool can be told (the sum check below then counts that least).
local function host_grant(hosts, asked, min_rate, default_running, default_rps)
  local grant = nil
  for _, key in ipairs(hosts) do
    local running, rps = host_limits(key, default_running, default_rps)
    grant = math.min(grant or rps / running, rps / running)
  end
  if asked > 0 then grant = math.min(grant, asked) end
  return math.max(grant, min_rate)
end

-- The first key the run may not lease now (at its cap, its budget would be exceeded, or reserved by an older
-- run), or nil when it may lease them all; and whether it can ever fit (false: its rate alone is over a key's
-- budget, as when an override is below what its tool can be told: it must not hold reservations for ever).
local function hosts_blocked(id, hosts, grant, default_running, default_rps)
  local blocked, possible = nil, true
  for _, key in ipairs(hosts) do
    local running, rps = host_limits(key, default_running, default_rps)
    if grant > rps * (1 + 1e-9) then
      blocked, possible = blocked or key[1], false
    elseif not blocked then
      local runs, rate = host_load(key)
      if reserved_by_older(id, key) or runs + 1 > running or rate + grant > rps * (1 + 1e-9) then blocked = key[1] end
    end
  end
  return blocked, possible
end

-- Reserve every key of a waiting run that no older run has reserved (taking over a younger run's), renewing its
-- own: the keys it is not blocked on stay for it too, so newcomers cannot take them while it waits for the rest.
local function host_reserve(id, hosts, ttl)
  for _, key in ipairs(hosts) do
    local want = P .. 'hostwant:' .. key[1]
    local holder = redis.call('GET', want)
    if not holder or holder == id or older(id, holder) then redis.call('SET', want, id, 'PX', ttl * 2) end
  end
end

-- A run that is no longer waiting for its hosts (its tenant is at its cap) holds none of them reserved.
local function host_unreserve(id, hosts)
  for _, key in ipairs(hosts or {}) do
    if redis.call('GET', P .. 'hostwant:' .. key[1]) == id then redis.call('DEL', P .. 'hostwant:' .. key[1]) end
  end
  redis.call('HDEL', P .. 'hostblocked', id)
end

-- Whether the run holds a live lease on exactly these keys (what a pick gave it, not a dead life's leftovers).
local function host_holds(id, hosts)
  local raw = redis.call('HGET', P .. 'hostheld', id)
  local wanted = type(hosts) == 'table' and hosts or {}
  if not raw then return #wanted == 0 end
  local held = cjson.decode(raw)['h']
  if #held ~= #wanted then return false end
  for i, item in ipairs(held) do
    local expiry = redis.call('ZSCORE', P .. 'host:' .. item[1], id)
    if item[1] ~= wanted[i][1] or not expiry or tonumber(expiry) <= now then return false end
  end
  return true
end

local function host_lease(id, hosts, grant, ttl)
  local expiry, held = now + ttl, {}
  for _, key in ipairs(hosts) do
    local text = key[1]
    redis.call('ZADD', P .. 'host:' .. text, expiry, id)
    redis.call('HSET', P .. 'hostrate:' .. text, id, tostring(grant))
    local below = text
    for _, above in ipairs(key[5]) do
      redis.call('SADD', P .. 'hostkids:' .. above, below)
      below = above
    end
    if redis.call('GET', P .. 'hostwant:' .. text) == id then redis.call('DEL', P .. 'hostwant:' .. text) end
    table.insert(held, {text, key[5]})
  end
  redis.call('HSET', P .. 'hostheld', id, cjson.encode({h = held, r = grant}))
  redis.call('HDEL', P .. 'hostblocked', id)
end

-- The rate a run holding host leases was given ('0': it holds none); its leases pushed a TTL ahead.
local function host_renew(id, ttl)
  local raw = redis.call('HGET', P .. 'hostheld', id)
  if not raw then return '0' end
  local held = cjson.decode(raw)
  for _, item in ipairs(held['h']) do redis.call('ZADD', P .. 'host:' .. item[1], now + ttl, id) end
  return tostring(held['r'])
end

-- A key that holds no lease and has nothing leased below it leaves the kids of the key above it, and so on up.
local function host_prune(text, above)
  local below = text
  for _, up in ipairs(above) do
    if redis.call('EXISTS', P .. 'host:' .. below) == 1 or redis.call('EXISTS', P .. 'hostkids:' .. below) == 1 then
      return
    end
    redis.call('SREM', P .. 'hostkids:' .. up, below)
    below = up
  end
end

-- Everything politeness holds for a run: its leases and their rates, its reservations, its waiting mark.
local function host_forget(id, hosts)
  local raw = redis.call('HGET', P .. 'hostheld', id)
  if raw then
    for _, item in ipairs(cjson.decode(raw)['h']) do
      redis.call('ZREM', P .. 'host:' .. item[1], id)
      redis.call('HDEL', P .. 'hostrate:' .. item[1], id)
      host_prune(item[1], item[2])
    end
    redis.call('HDEL', P .. 'hostheld', id)
  end
  host_unreserve(id, hosts)
end

-- Lease a run's hosts if they all fit, or reserve them. Returns the key it waits for (nil: it holds its leases,
-- or politeness is off or it reaches no host) and the rate it was given (0: none).
local function host_try(id, envelope, ttl, host_running, host_rps)
  local hosts = envelope['hosts']
  if host_running == 0 or type(hosts) ~= 'table' or #hosts == 0 then return nil, 0 end
  local asked, least = tonumber(envelope['rate'] or 0), tonumber(envelope['min_rate'] or 0)
  local grant = host_grant(hosts, asked, least, host_running, host_rps)
  local blocked, possible = hosts_blocked(id, hosts, grant, host_running, host_rps)
  if blocked then
    if possible then host_reserve(id, hosts, ttl) end
    redis.call('HSET', P .. 'hostblocked', id, blocked)
    return blocked, 0
  end
  host_lease(id, hosts, grant, ttl)
  return nil, grant
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
local function pick(default_cap, ttl, budget, host_running, host_rps)
  local picked = {}
  local misses = 0
  local free, workers = capacity()
  local bounded = workers > 0
  if bounded then free = free - live(P .. 'leases') end
  while (not bounded or free > 0) and budget > 0 and misses < redis.call('LLEN', P .. 'ring') do
    local tenant = redis.call('LPOP', P .. 'ring')
    if redis.call('SISMEMBER', P .. 'ringed', tenant) == 0 then
      -- A ring written before 'ringed' existed may hold it twice: the second place goes (O(tenants), once).
      redis.call('LREM', P .. 'ring', 0, tenant)
    end
    local waiting = P .. 'wait:' .. tenant
    local chosen = nil
    -- FIFO within a tenant; a head blocked only by its tool's cap or a host lets one of the next 16 runs go.
    for _, id in ipairs(redis.call('LRANGE', waiting, 0, 15)) do
      local raw = redis.call('HGET', P .. 'parked', id)
      if raw then
        local envelope = cjson.decode(raw)
        local tool = envelope['tool']
        if not fits(tenant, tool, default_cap) then
          host_unreserve(id, envelope['hosts'])  -- waiting for its tenant, not for its hosts
        elseif not host_try(id, envelope, ttl, host_running, host_rps) then
          chosen = id
          lease(id, tenant, tool, ttl)
          break
        end
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
-- waits in, unless `off_list`: its caller took it off already), parking time, republish count, leases,
-- dispatching and unsent marks. Any way a run ends comes here.
local function forget(id, tenant, tool, envelope_too, off_list)
  local raw = redis.call('HGET', P .. 'parked', id)
  local hosts = nil
  if raw and envelope_too then
    local envelope = cjson.decode(raw)
    hosts = envelope['hosts']
    if tenant == '' then tenant, tool = envelope['tenant_id'], envelope['tool'] end
    local waiting_in = envelope['waiting_in'] or ''
    if waiting_in ~= '' and not off_list and redis.call('LREM', waiting_in, 0, id) > 0
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
  host_forget(id, type(hosts) == 'table' and hosts or nil)
end

-- A parked run's message arrived and it runs (or parks afresh): its parked state goes, its lease stays.
local function admitted(id)
  redis.call('ZREM', P .. 'dispatching', id)
  redis.call('ZREM', P .. 'unsent', id)
  redis.call('HDEL', P .. 'parked', id)
  redis.call('ZREM', P .. 'parked_at', id)
  redis.call('HDEL', P .. 'republished', id)
  redis.call('HDEL', P .. 'hostblocked', id)
end
