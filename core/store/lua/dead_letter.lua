-- dead_letter.lua: move one entry the worker cannot write to the dead-letter stream.
-- It is copied first and acknowledged last, and only while it is still pending: an
-- error in between leaves it pending (claimed again), never in neither place.
--
-- KEYS[1] event stream         og:{p}:events
-- KEYS[2] dead-letter stream   og:{p}:dead
-- KEYS[3] undrained counter    og:{p}:undrained
-- ARGV[1] consumer group   ARGV[2] entry id   ARGV[3] reason
-- ARGV[4..] the entry's fields and values, as read
-- Returns 1 if the entry was still pending (and is now dead-lettered), 0 otherwise.
local pending = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1)
if #pending == 0 then
  return 0
end
local fields = {'entry_id', ARGV[2], 'reason', ARGV[3]}
for i = 4, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('XADD', KEYS[2], '*', unpack(fields))
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
if redis.call('DECR', KEYS[3]) < 0 then
  redis.call('SET', KEYS[3], 0)
end
return 1
