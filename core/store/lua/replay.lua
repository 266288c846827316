-- replay.lua: apply to Redis one event that og.events holds but Redis lost (it went back
-- in time: the last second of an AOF with appendfsync everysec, or a failover to a
-- replica that lagged). The conversation key, the uuid filter and the stats get what
-- initial.lua or followup.lua gave them; the stream does not (the event is stored).
--
-- KEYS[1] conversation key   KEYS[2] aggregates hash   KEYS[3] uuid filter
-- KEYS[4] its size in bits   KEYS[5] stored mark og:{p}:stored
-- ARGV[1] kind   ARGV[2] uuid   ARGV[3] symbol   ARGV[4] guess   ARGV[5] ts (epoch us)
-- ARGV[6] the conversation's ts   ARGV[7] seconds the conversation key should live
-- ARGV[8] the event's entry id: the stored mark moves up to it
-- Returns 'applied', or 'duplicate' when the conversation key has it already (lost.lua
-- found it lost, and the API accepted the same event again since: og.events will hold
-- it twice; counted once here). A second replay of one event is 'duplicate'.
local kind, uuid, symbol, guess, ts, cts = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]

local function newer(a, b)  -- entry ids compare as (ms, seq) numbers (as in ack.lua)
  local ams, aseq = string.match(a, '^(%d+)-(%d+)$')
  local bms, bseq = string.match(b, '^(%d+)-(%d+)$')
  if #ams ~= #bms then return #ams > #bms end
  if ams ~= bms then return ams > bms end
  return tonumber(aseq) > tonumber(bseq)
end
if newer(ARGV[8], redis.call('GET', KEYS[5]) or '0-0') then
  redis.call('SET', KEYS[5], ARGV[8])
end

if kind == 'initial' then
  if not redis.call('SET', KEYS[1], '-' .. symbol .. guess .. ts, 'NX', 'EX', ARGV[7]) then
    return 'duplicate'
  end
  local bits = tonumber(redis.call('GET', KEYS[4]) or '0')
  if bits > 0 then
    local digest = redis.sha1hex(uuid)
    for i = 0, 3 do
      redis.call('SETBIT', KEYS[3], tonumber(string.sub(digest, 8 * i + 1, 8 * i + 8), 16) % bits, 1)
    end
  end
  redis.call('HINCRBY', KEYS[2], symbol .. ':n' .. guess, 1)
  local bounds = redis.call('HMGET', KEYS[2], symbol .. ':first', symbol .. ':last')
  if not bounds[1] or ts < bounds[1] then redis.call('HSET', KEYS[2], symbol .. ':first', ts) end
  if not bounds[2] or ts > bounds[2] then redis.call('HSET', KEYS[2], symbol .. ':last', ts) end
  return 'applied'
end
local current = redis.call('GET', KEYS[1])
if current and string.sub(current, 1, 1) == '+' then
  return 'duplicate'
end
redis.call('SET', KEYS[1], '+' .. symbol .. guess .. cts, 'EX', ARGV[7])
redis.call('HINCRBY', KEYS[2], symbol .. ':f' .. guess, 1)
return 'applied'
