-- trim.lua: drop the stream entries the consumer group has acknowledged, and no others;
-- then true up the undrained counter.
-- Everything older than the oldest pending entry is acknowledged; when nothing is
-- pending, everything up to the group's last-delivered id is. Entries not yet delivered
-- are never touched (never a MAXLEN, which could drop unwritten events).
--
-- KEYS[1] event stream   og:{p}:events
-- KEYS[2] undrained counter   og:{p}:undrained
-- ARGV[1] consumer group
-- Returns the number of entries trimmed.
-- The group (or the stream) may be gone, if Redis lost its data under the batch: then
-- there is nothing to trim, and the worker recreates the group.
local pending = redis.pcall('XPENDING', KEYS[1], ARGV[1])
if pending['err'] then
  return 0
end
local min_id
if pending[1] > 0 then
  min_id = pending[2]
else
  local last
  for _, group in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
    local info = {}
    for i = 1, #group, 2 do info[group[i]] = group[i + 1] end
    if info['name'] == ARGV[1] then last = info['last-delivered-id'] end
  end
  if not last then return 0 end
  local ms, seq = string.match(last, '^(%d+)-(%d+)$')
  -- seq stays far below 2^53, so the Lua number prints as an integer.
  min_id = ms .. '-' .. string.format('%d', tonumber(seq) + 1)
end
local trimmed = redis.call('XTRIM', KEYS[1], 'MINID', min_id)

-- With nothing pending, what is left after the trim is exactly what no worker has been
-- given yet: the counter is set to it (this also starts it on a store that predates it,
-- and corrects entries appended by other means). Otherwise it lies between the pending
-- count and the stream's length.
local length = redis.call('XLEN', KEYS[1])
if pending[1] == 0 then
  redis.call('SET', KEYS[2], length)
else
  local counted = tonumber(redis.call('GET', KEYS[2]) or '0')
  if counted < pending[1] then
    redis.call('SET', KEYS[2], pending[1])
  elseif counted > length then
    redis.call('SET', KEYS[2], length)
  end
end
return trimmed
