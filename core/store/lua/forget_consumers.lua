-- forget_consumers.lua: remove from the group the consumers of workers that are gone.
-- A consumer is removed only if it holds nothing pending, has been idle longer than the
-- bound and is not the caller. Checking and deleting happen in one atomic step: XGROUP
-- DELCONSUMER on a consumer that holds pending entries drops them from the group's
-- pending list, and their events would never be written. (A live worker removed while
-- idle loses nothing: its next read registers it again.)
--
-- KEYS[1] event stream   og:{p}:events
-- ARGV[1] consumer group   ARGV[2] idle bound (ms)   ARGV[3] the caller's consumer name
-- Returns the names removed.
if redis.call('EXISTS', KEYS[1]) == 0 then return {} end
local ok, consumers = pcall(redis.call, 'XINFO', 'CONSUMERS', KEYS[1], ARGV[1])
if not ok then return {} end  -- no such group (yet, or any more)
local bound = tonumber(ARGV[2])
local removed = {}
for _, consumer in ipairs(consumers) do
  local info = {}
  for i = 1, #consumer, 2 do info[consumer[i]] = consumer[i + 1] end
  if info['pending'] == 0 and info['idle'] > bound and info['name'] ~= ARGV[3] then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], info['name'])
    removed[#removed + 1] = info['name']
  end
end
return removed
