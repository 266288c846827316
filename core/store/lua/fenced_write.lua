-- fenced_write.lua: one write of `ingest rebuild` to a partition, done only while this
-- rebuild still holds the partition's fence (no API write can have come between): the
-- key built aside replaces the live one (or the live one is deleted when nothing was
-- built).
--
-- KEYS[1] rebuild fence   og:{p}:fence
-- KEYS[2] the key built aside   KEYS[3] the live key
-- KEYS[4] (optional) a key to set to ARGV[2] with it (the uuid filter's size)
-- ARGV[1] this rebuild's token
-- Returns 1, or 0 when the fence is no longer this rebuild's (nothing written).
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
if redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('RENAME', KEYS[2], KEYS[3])
else
  redis.call('DEL', KEYS[3])
end
if KEYS[4] then
  redis.call('SET', KEYS[4], ARGV[2])
end
return 1
