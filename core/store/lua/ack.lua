-- ack.lua: acknowledge written entries and take them off the undrained counter together,
-- so the counter the API sheds by stays equal to lag + pending; and move the stored mark
-- forward: every entry this Redis acknowledged up to it is in og.events, so an entry
-- past it that the stream lacks was lost by Redis (lost.lua), not trimmed.
--
-- KEYS[1] event stream   og:{p}:events
-- KEYS[2] undrained counter   og:{p}:undrained
-- KEYS[3] stored mark    og:{p}:stored
-- ARGV[1] consumer group   ARGV[2..] entry ids, all committed to og.events
-- The mark moves up to the newest id acknowledged here, one XACK per id: an id this
-- Redis never had pending (it lost it, or another worker acked it) must not move it.
-- Returns the number of entries acknowledged now (an entry acked before counts 0).
local function newer(a, b)  -- entry ids compare as (ms, seq) numbers, not as strings
  local at, bt = string.find(a, '-', 1, true), string.find(b, '-', 1, true)
  if at ~= bt then return at > bt end  -- ms parts of different lengths
  local ams, bms = string.sub(a, 1, at), string.sub(b, 1, bt)
  if ams ~= bms then return ams > bms end
  return tonumber(string.sub(a, at + 1)) > tonumber(string.sub(b, bt + 1))
end

local mark = redis.call('GET', KEYS[3]) or '0-0'
local newest, acked = mark, 0
for i = 2, #ARGV do
  if redis.call('XACK', KEYS[1], ARGV[1], ARGV[i]) == 1 then
    acked = acked + 1
    if newer(ARGV[i], newest) then newest = ARGV[i] end
  end
end
if acked > 0 and redis.call('DECRBY', KEYS[2], acked) < 0 then
  -- Entries appended without the API's scripts (a test, an older version) were never
  -- counted; the counter does not go below what it can know.
  redis.call('SET', KEYS[2], 0)
end
if newest ~= mark then
  redis.call('SET', KEYS[3], newest)
end
return acked
