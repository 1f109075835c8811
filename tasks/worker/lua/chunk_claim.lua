-- Claim the next chunks of a running parent that its window lets out. KEYS: the parent's record, the claims set.
-- ARGV: the parent's task id, the window (chunks out and not yet counted, at most), the time (ms). The record's
-- 'sent' is how many chunks were ever claimed (in order) and 'done' how many were counted, so 'sent' - 'done' are
-- out; the claim moves 'sent' up to 'done' + window (at most 'total') and enters the claimed range in the claims
-- set scored by now: the caller publishes it and removes the entry, the safety net publishes it again if the
-- caller died in between. Returns {from, to}: the indices [from, to) to publish, empty when from == to.
if redis.call('HGET', KEYS[1], 'state') ~= 'running' then return {0, 0} end
local sent = tonumber(redis.call('HGET', KEYS[1], 'sent') or 0)
local done = tonumber(redis.call('HGET', KEYS[1], 'done') or 0)
local total = tonumber(redis.call('HGET', KEYS[1], 'total'))
local upto = math.min(total, done + tonumber(ARGV[2]))
if upto <= sent then return {sent, sent} end
redis.call('HSET', KEYS[1], 'sent', upto)
redis.call('ZADD', KEYS[2], tonumber(ARGV[3]), ARGV[1] .. '|' .. sent .. '|' .. upto)
return {sent, upto}
