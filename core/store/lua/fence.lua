-- fence.lua: hold, extend or release the rebuild fence of one partition. While the
-- fence key exists, the API's scripts refuse writes ('fenced': 503, not recorded).
--
-- KEYS[1] rebuild fence   og:{p}:fence
-- ARGV[1] 'hold', 'extend' or 'release'   ARGV[2] this rebuild's token   ARGV[3] ms to live
-- Returns 1 when the fence is (or was, for 'release') this rebuild's, 0 otherwise:
-- 'hold' finds another rebuild's fence, 'extend' finds it gone (expired).
local op, token = ARGV[1], ARGV[2]
if op == 'hold' then
  if redis.call('SET', KEYS[1], token, 'NX', 'PX', ARGV[3]) then return 1 end
  return 0
end
if redis.call('GET', KEYS[1]) ~= token then
  return 0
end
if op == 'extend' then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
else
  redis.call('DEL', KEYS[1])
end
return 1
