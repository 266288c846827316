-- ack.lua: acknowledge written entries and take them off the undrained counter together,
-- so the counter the API sheds by stays equal to lag + pending; and move the stored mark
-- (the newest entry id known to be in og.events) forward.
--
-- KEYS[1] event stream   og:{p}:events
-- KEYS[2] undrained counter   og:{p}:undrained
-- KEYS[3] stored mark    og:{p}:stored
-- ARGV[1] consumer group   ARGV[2..] entry ids, all committed to og.events
-- Returns the number of entries acknowledged now (an entry acked before counts 0).
local function newer(a, b)  -- entry ids compare as (ms, seq) numbers, not as strings
  local ams, aseq = string.match(a, '^(%d+)-(%d+)$')
  local bms, bseq = string.match(b, '^(%d+)-(%d+)$')
  if #ams ~= #bms then return #ams > #bms end
  if ams ~= bms then return ams > bms end
  return tonumber(aseq) > tonumber(bseq)
end

local ids, newest = {}, redis.call('GET', KEYS[3]) or '0-0'
for i = 2, #ARGV do
  ids[#ids + 1] = ARGV[i]
  if newer(ARGV[i], newest) then newest = ARGV[i] end
end
local acked = redis.call('XACK', KEYS[1], ARGV[1], unpack(ids))
if acked > 0 and redis.call('DECRBY', KEYS[2], acked) < 0 then
  -- Entries appended without the API's scripts (a test, an older version) were never
  -- counted; the counter does not go below what it can know.
  redis.call('SET', KEYS[2], 0)
end
redis.call('SET', KEYS[3], newest)
return acked
