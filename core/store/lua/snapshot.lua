-- snapshot.lua: one partition's drain figures in one atomic step, so they agree with
-- each other under load (read by `ingest status`, the worker's gauges and the page).
--
-- KEYS[1] event stream        og:{p}:events
-- KEYS[2] undrained counter   og:{p}:undrained
-- KEYS[3] dead-letter stream  og:{p}:dead
-- ARGV[1] consumer group
-- Returns {length, counter, dead letters, time s, time us, 0} without the group, else
-- {..., 1, last-delivered id, pending, oldest pending id, {name, pending, idle, ...}}.
local length = redis.call('XLEN', KEYS[1])
local counter = redis.call('GET', KEYS[2]) or '0'
local dead = redis.call('XLEN', KEYS[3])
local now = redis.call('TIME')
local group = false
if redis.call('EXISTS', KEYS[1]) == 1 then
  for _, g in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
    local info = {}
    for i = 1, #g, 2 do info[g[i]] = g[i + 1] end
    if info['name'] == ARGV[1] then group = info end
  end
end
if not group then
  return {length, counter, dead, now[1], now[2], 0}
end
local summary = redis.call('XPENDING', KEYS[1], ARGV[1])
local consumers = {}
for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  local info = {}
  for i = 1, #c, 2 do info[c[i]] = c[i + 1] end
  consumers[#consumers + 1] = info['name']
  consumers[#consumers + 1] = info['pending']
  consumers[#consumers + 1] = info['idle']
end
return {length, counter, dead, now[1], now[2], 1, group['last-delivered-id'], summary[1],
        summary[2] or '', consumers}
