-- End a parked run the safety net gives up on, only if it is still where the net saw it: dispatched long
-- ago and never arrived (ARGV[3] = 'dispatching'), or parked since before the cutoff ('parked_at').
-- ARGV: prefix, id, which, cutoff ms, done ms. Returns 1 when it ended the run, 0 when it had moved on.
local id, which, cutoff, done_ms = ARGV[2], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
local since = redis.call('ZSCORE', P .. which, id)
if not since or tonumber(since) > cutoff then return 0 end
redis.call('SET', P .. 'done:' .. id, 1, 'PX', done_ms)
forget(id, '', '', true)
return 1
