-- followup.lua: POST /followup in one atomic step (one round trip per request).
-- Marks the conversation followed up, appends the event and counts it for the model
-- and the dashboard, under the symbol and guess recorded by its /initial.
--
-- KEYS[1] conversation key   og:{p}:conv:<uuid>
-- KEYS[2] event stream       og:{p}:events
-- KEYS[3] aggregates hash    og:{p}:stats
-- ARGV[1] uuid (canonical)   ARGV[2] backlog high-water mark, stream entries
-- Returns 'ok', 'unknown' (no such conversation in the window: 404),
-- 'followed' (already followed up: 409) or 'backlog' (503, nothing written).
local conversation = redis.call('GET', KEYS[1])
if not conversation then
  return 'unknown'
end
if string.sub(conversation, 1, 1) == '+' then
  return 'followed'
end
if redis.call('XLEN', KEYS[2]) >= tonumber(ARGV[2]) then
  return 'backlog'
end

local symbol, guess = string.sub(conversation, 2, 2), string.sub(conversation, 3, 3)
local conversation_ts = string.sub(conversation, 4)
local now = redis.call('TIME')
local ts = now[1] .. string.format('%06d', now[2])

redis.call('SET', KEYS[1], '+' .. string.sub(conversation, 2), 'KEEPTTL')
redis.call('XADD', KEYS[2], '*', 'kind', 'followup', 'uuid', ARGV[1], 'symbol', symbol,
           'guess', guess, 'ts', ts, 'cts', conversation_ts)
redis.call('HINCRBY', KEYS[3], symbol .. ':f' .. guess, 1)
return 'ok'
