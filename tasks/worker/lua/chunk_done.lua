-- Record one chunk's outcome in its parent. KEYS: the parent's record, its outcomes, the merging set, its plan
-- (each unpublished or running chunk's targets: the counted chunk's are dropped). ARGV: the
-- parent's task id, the chunk's index, its status (a counter of the record), its summary (JSON), its findings,
-- the records' TTL (ms). Only a running parent records: a merged or cancelled one is left as it is. The first
-- outcome of an index counts; a second (a duplicate message) changes nothing. When the last chunk is in, the
-- parent turns 'merging' and enters the merging set (its merge is published by the caller; the safety net
-- publishes it again if that caller died). Returns {state, done, total, findings, 1 if this call completed the
-- parent}; state '' when the parent has no record (cancelled long ago, or none).
if redis.call('EXISTS', KEYS[1]) == 0 then return {'', 0, 0, 0, 0} end
local state = redis.call('HGET', KEYS[1], 'state')
local function counts()
  return tonumber(redis.call('HGET', KEYS[1], 'done') or 0), tonumber(redis.call('HGET', KEYS[1], 'total')),
    tonumber(redis.call('HGET', KEYS[1], 'findings') or 0)
end
if state ~= 'running' then
  local done, total, findings = counts()
  return {state, done, total, findings, 0}
end
if redis.call('HSETNX', KEYS[2], ARGV[2], ARGV[4]) == 1 then
  redis.call('HINCRBY', KEYS[1], ARGV[3], 1)
  redis.call('HINCRBY', KEYS[1], 'findings', tonumber(ARGV[5]))
  redis.call('HINCRBY', KEYS[1], 'done', 1)
  redis.call('HDEL', KEYS[4], ARGV[2])
end
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[6]))
redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[6]))
redis.call('PEXPIRE', KEYS[4], tonumber(ARGV[6]))
local done, total, findings = counts()
local completed = 0
if done >= total then
  local t = redis.call('TIME')
  redis.call('HSET', KEYS[1], 'state', 'merging')
  redis.call('ZADD', KEYS[3], tonumber(t[1]) * 1000, ARGV[1])
  state, completed = 'merging', 1
end
return {state, done, total, findings, completed}
