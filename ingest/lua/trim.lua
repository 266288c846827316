-- trim.lua: drop the stream entries the consumer group has acknowledged, and no others.
-- Everything older than the oldest pending entry is acknowledged; when nothing is
-- pending, everything up to the group's last-delivered id is. Entries not yet delivered
-- are never touched (never a MAXLEN, which could drop unwritten events).
--
-- KEYS[1] event stream   og:{p}:events
-- ARGV[1] consumer group
-- Returns the number of entries trimmed.
local pending = redis.call('XPENDING', KEYS[1], ARGV[1])
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
return redis.call('XTRIM', KEYS[1], 'MINID', min_id)
