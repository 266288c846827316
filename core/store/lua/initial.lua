-- initial.lua: POST /initial in one atomic step (one round trip per request).
-- Checks the uuid is new, appends the event to the stream and updates the symbol's
-- aggregates, all stamped with this Redis's clock (TIME).
--
-- KEYS[1] conversation key   og:{p}:conv:<uuid>
-- KEYS[2] event stream       og:{p}:events
-- KEYS[3] aggregates hash    og:{p}:stats
-- KEYS[4] undrained counter  og:{p}:undrained
-- KEYS[5] rebuild fence      og:{p}:fence
-- KEYS[6] uuid filter        og:{p}:seen (core/seen.py: the same positions)
-- KEYS[7] its size in bits   og:{p}:seen:bits
-- KEYS[8] partition count    og:{p}:layout (the store's OG_STREAM_PARTITIONS)
-- ARGV[1] uuid (canonical)   ARGV[2] symbol (a-z)   ARGV[3] guess ('1' vowel, '0' consonant)
-- ARGV[4] conversation window, seconds   ARGV[5] backlog high-water mark, entries
-- ARGV[6] the filter's bits if KEYS[7] is missing (0: no filter)
-- ARGV[7] '1' when og.events was asked already
-- ARGV[8] the caller's partition count
-- Returns 'ok', 'exists' (the uuid already started a conversation: 409), 'backlog'
-- (more undrained entries than the mark: 503), 'fenced' (a rebuild runs: 503),
-- 'layout' (the store has another partition count: 503, see core/keys.py) or
-- 'check' (the filter may have seen the uuid, before its window: the caller asks
-- og.events, then calls again with ARGV[7] = '1'); nothing is written unless 'ok'.
local uuid, symbol, guess = ARGV[1], ARGV[2], ARGV[3]

local guard = redis.call('MGET', KEYS[4], KEYS[5], KEYS[7], KEYS[8])
if guard[2] then
  return 'fenced'
end
-- Checked on every write, not once at connect: a process started before a rebuild that
-- changed the count would otherwise append to streams no worker reads.
if guard[4] ~= ARGV[8] then
  if guard[4] then return 'layout' end
  redis.call('SET', KEYS[8], ARGV[8])  -- Redis lost it: the first writer records it again
end
-- Undrained, not XLEN: entries already written and acknowledged may wait behind a dead
-- worker's pending ones to be trimmed, and are no backlog.
if tonumber(guard[1] or '0') >= tonumber(ARGV[5]) then
  return 'backlog'
end

local now = redis.call('TIME')
local ts = now[1] .. string.format('%06d', now[2])

if not redis.call('SET', KEYS[1], '-' .. symbol .. guess .. ts, 'NX', 'EX', ARGV[4]) then
  return 'exists'
end

-- The store's recorded size wins over this process's setting: every process must hash
-- a uuid to the same bits. (`ingest rebuild --resize-uuid-filter` changes it, under its
-- fence.) Missing (Redis lost its data), this process's setting is recorded again.
local bits = tonumber(guard[3] or ARGV[6])
if not guard[3] then
  redis.call('SET', KEYS[7], ARGV[6])
end
if bits > 0 then
  -- One BITFIELD sets the uuid's four bits and answers what they were: all four set
  -- already means the filter has (probably) seen it, and then the SETs changed nothing.
  local digest, ops = redis.sha1hex(uuid), {}
  for i = 0, 3 do
    local position = tonumber(string.sub(digest, 8 * i + 1, 8 * i + 8), 16) % bits
    ops[4 * i + 1], ops[4 * i + 2], ops[4 * i + 3], ops[4 * i + 4] = 'SET', 'u1', position, 1
  end
  local was = redis.call('BITFIELD', KEYS[6], unpack(ops))
  if ARGV[7] ~= '1' and was[1] == 1 and was[2] == 1 and was[3] == 1 and was[4] == 1 then
    redis.call('DEL', KEYS[1])  -- nothing written: the caller decides first
    return 'check'
  end
end

redis.call('XADD', KEYS[2], '*', 'kind', 'initial', 'uuid', uuid, 'symbol', symbol,
           'guess', guess, 'ts', ts, 'cts', ts)
redis.call('INCR', KEYS[4])

-- ts strings have the same length (16 digits until 2286), so string order is time order;
-- comparing keeps first/last right even if the clock steps back.
local first_field, last_field = symbol .. ':first', symbol .. ':last'
local bounds = redis.call('HMGET', KEYS[3], first_field, last_field)
redis.call('HINCRBY', KEYS[3], symbol .. ':n' .. guess, 1)
if not bounds[1] or ts < bounds[1] then
  redis.call('HSET', KEYS[3], first_field, ts)
end
if not bounds[2] or ts > bounds[2] then
  redis.call('HSET', KEYS[3], last_field, ts)
end
return 'ok'
