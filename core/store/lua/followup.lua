-- followup.lua: POST /followup in one atomic step (one round trip per request).
-- Marks the conversation followed up, appends the event and counts it for the model
-- and the dashboard, under the symbol and guess recorded by its /initial.
--
-- KEYS[1] conversation key   og:{p}:conv:<uuid>
-- KEYS[2] event stream       og:{p}:events
-- KEYS[3] aggregates hash    og:{p}:stats
-- KEYS[4] undrained counter  og:{p}:undrained
-- KEYS[5] rebuild fence      og:{p}:fence
-- KEYS[6] partition count    og:{p}:layout
-- ARGV[1] uuid (canonical)   ARGV[2] backlog high-water mark, entries
-- ARGV[3] conversation window, seconds: the followed-up key lives this long from now
-- ARGV[4] the caller's partition count
-- ARGV[5] (optional) the conversation as og.events records it (core/store/codec.py's
--         Conversation), when its window has passed
-- Returns 'ok', 'unknown' (not in the window: the caller may look in og.events and call
-- again with ARGV[5]), 'followed' (already followed up: 409), 'backlog', 'fenced' or 'layout' (503);
-- nothing is written unless 'ok'.
local conversation = redis.call('GET', KEYS[1])
if not conversation then
  if not ARGV[5] then
    return 'unknown'
  end
  conversation = ARGV[5]
end
if string.sub(conversation, 1, 1) == '+' then
  return 'followed'
end
local guard = redis.call('MGET', KEYS[4], KEYS[5], KEYS[6])
if guard[2] then
  return 'fenced'
end
if guard[3] ~= ARGV[4] then
  if guard[3] then return 'layout' end
  redis.call('SET', KEYS[6], ARGV[4])
end
if tonumber(guard[1] or '0') >= tonumber(ARGV[2]) then
  return 'backlog'
end

local symbol, guess = string.sub(conversation, 2, 2), string.sub(conversation, 3, 3)
local conversation_ts = string.sub(conversation, 4)
local now = redis.call('TIME')
local ts = now[1] .. string.format('%06d', now[2])

-- Kept a whole window from now, not only what was left of the conversation's: a second
-- followup is then a 409 from here, not from og.events, where this one lands only after
-- the ingest delay (a followup at the window's last moment would otherwise find neither).
redis.call('SET', KEYS[1], '+' .. string.sub(conversation, 2), 'EX', ARGV[3])
redis.call('XADD', KEYS[2], '*', 'kind', 'followup', 'uuid', ARGV[1], 'symbol', symbol,
           'guess', guess, 'ts', ts, 'cts', conversation_ts)
redis.call('INCR', KEYS[4])
redis.call('HINCRBY', KEYS[3], symbol .. ':f' .. guess, 1)
return 'ok'
