-- lost.lua: which of these stored events (from og.events) this Redis lost. Read in one
-- atomic step with the stored mark, so an entry acknowledged and trimmed meanwhile is
-- never taken for a lost one.
--
-- KEYS[1] event stream   og:{p}:events
-- KEYS[2] stored mark    og:{p}:stored (ack.lua)
-- KEYS[3..] the events' conversation keys, in ARGV's order
-- ARGV[i] 'kind:entry id' of the event whose conversation key is KEYS[i + 2]
-- Returns one code per event: 0 it is here (in the stream, or not past the mark and
-- its conversation key shows it); 1 lost: not in the stream and past the mark (never
-- acknowledged here, and unacknowledged entries are never trimmed); 2 lost: not past
-- the mark (acks on the node that took over moved it on) but its conversation key
-- lacks it (an initial's key is missing, a followup's is not '+').
local function newer(a, b)  -- entry ids compare as (ms, seq) numbers (as in ack.lua)
  local ams, aseq = string.match(a, '^(%d+)-(%d+)$')
  local bms, bseq = string.match(b, '^(%d+)-(%d+)$')
  if #ams ~= #bms then return #ams > #bms end
  if ams ~= bms then return ams > bms end
  return tonumber(aseq) > tonumber(bseq)
end
local mark = redis.call('GET', KEYS[2]) or '0-0'
local codes = {}
for i = 1, #ARGV do
  local kind, id = string.match(ARGV[i], '^(%a+):(.+)$')
  if #redis.call('XRANGE', KEYS[1], id, id, 'COUNT', 1) > 0 then
    codes[i] = 0
  elseif newer(id, mark) then
    codes[i] = 1
  else
    local conversation = redis.call('GET', KEYS[i + 2])
    local shown = conversation and (kind == 'initial' or string.sub(conversation, 1, 1) == '+')
    codes[i] = shown and 0 or 2
  end
end
return codes
