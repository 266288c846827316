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
local group
for _, g in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
  local info = {}
  for i = 1, #g, 2 do info[g[i]] = g[i + 1] end
  if info['name'] == ARGV[1] then group = info end
end
if not group then return 0 end
local min_id
if pending[1] > 0 then
  min_id = pending[2]
else
  local ms, seq = string.match(group['last-delivered-id'], '^(%d+)-(%d+)$')
  -- seq stays far below 2^53, so the Lua number prints as an integer.
  min_id = ms .. '-' .. string.format('%d', tonumber(seq) + 1)
end
local trimmed = redis.call('XTRIM', KEYS[1], 'MINID', min_id)

-- Undrained = pending + entries no worker has been given yet. With nothing pending,
-- that is what is left after the trim. Under load something is always pending: then
-- the group's lag (entries after its last-delivered id) gives the rest, when Redis
-- knows it (it is nil after a restart from the AOF) and it is possible (at most the
-- entries that are not pending). Otherwise the counter is only kept within its bounds.
-- So the counter cannot drift for long, whether the worker is idle or not.
local length = redis.call('XLEN', KEYS[1])
local lag = group['lag']
if pending[1] == 0 then
  redis.call('SET', KEYS[2], length)
elseif type(lag) == 'number' and lag >= 0 and lag <= length - pending[1] then
  redis.call('SET', KEYS[2], pending[1] + lag)
else
  local counted = tonumber(redis.call('GET', KEYS[2]) or '0')
  if counted < pending[1] then
    redis.call('SET', KEYS[2], pending[1])
  elseif counted > length then
    redis.call('SET', KEYS[2], length)
  end
end
return trimmed
