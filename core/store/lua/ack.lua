-- ack.lua: acknowledge written entries and take them off the undrained counter together,
-- so the counter the API sheds by stays equal to lag + pending.
--
-- KEYS[1] event stream   og:{p}:events
-- KEYS[2] undrained counter   og:{p}:undrained
-- ARGV[1] consumer group   ARGV[2..] entry ids
-- Returns the number of entries acknowledged now (an entry acked before counts 0).
local ids = {}
for i = 2, #ARGV do ids[#ids + 1] = ARGV[i] end
local acked = redis.call('XACK', KEYS[1], ARGV[1], unpack(ids))
if acked > 0 and redis.call('DECRBY', KEYS[2], acked) < 0 then
  -- Entries appended without the API's scripts (a test, an older version) were never
  -- counted; the counter does not go below what it can know.
  redis.call('SET', KEYS[2], 0)
end
return acked
