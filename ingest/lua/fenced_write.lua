-- fenced_write.lua: one write of `ingest rebuild` to a partition, done only while this
-- rebuild still holds the partition's fence (no API write can have come between).
--
-- KEYS[1] rebuild fence   og:{p}:fence
-- ARGV[1] this rebuild's token   ARGV[2] 'swap' or 'set'
-- swap: KEYS[2] the key built aside, KEYS[3] the live one: the aside one replaces it
--       (or the live one is deleted when nothing was built); with KEYS[4], ARGV[3]
--       is set there too (the uuid filter's size)
-- set:  KEYS[2..] conversation keys; ARGV[3..] value, seconds to live, for each
-- Returns 1, or 0 when the fence is no longer this rebuild's (nothing written).
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
if ARGV[2] == 'swap' then
  if redis.call('EXISTS', KEYS[2]) == 1 then
    redis.call('RENAME', KEYS[2], KEYS[3])
  else
    redis.call('DEL', KEYS[3])
  end
  if KEYS[4] then
    redis.call('SET', KEYS[4], ARGV[3])
  end
else
  for i = 2, #KEYS do
    redis.call('SET', KEYS[i], ARGV[2 * i - 1], 'EX', ARGV[2 * i])
  end
end
return 1
