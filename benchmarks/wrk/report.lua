-- report.lua: what every wrk script of the harness shares.
-- Seeds each thread's random numbers, counts responses by status in each thread, and
-- prints one line "WRK_JSON {...}" at the end: the summary, the latency percentiles
-- (microseconds) and the per-thread counters named in `counters`.
local report = {}
local threads = {}

-- Every run (and every thread) must make different uuids: LuaJIT seeds math.random
-- the same way in every state, which would make the second run all 409s.
function report.setup(thread)
  thread:set("thread_index", #threads + 1)
  table.insert(threads, thread)
end

function report.seed(args)
  math.randomseed((tonumber(args[1]) or os.time()) + 7919 * (thread_index or 1))
  for _ = 1, 10 do math.random() end
end

function report.count(status)
  statuses = statuses or {}
  local key = tostring(status)
  statuses[key] = (statuses[key] or 0) + 1
end

local function encode(value)
  local kind = type(value)
  if kind == "table" then
    local parts = {}
    if #value > 0 then
      for _, item in ipairs(value) do table.insert(parts, encode(item)) end
      return "[" .. table.concat(parts, ",") .. "]"
    end
    for key, item in pairs(value) do
      table.insert(parts, string.format("%q:%s", tostring(key), encode(item)))
    end
    return "{" .. table.concat(parts, ",") .. "}"
  elseif kind == "string" then
    return string.format("%q", value)
  elseif kind == "number" then
    return string.format("%.14g", value)
  end
  return tostring(value)
end

local PERCENTILES = {1, 5, 10, 20, 30, 40, 50, 60, 70, 75, 80, 90, 95, 97.5, 99, 99.5, 99.9, 99.99}

function report.done(summary, latency, counters)
  local totals = {statuses = {}}
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("statuses") or {}) do
      totals.statuses[status] = (totals.statuses[status] or 0) + n
    end
    for _, name in ipairs(counters or {}) do
      totals[name] = (totals[name] or 0) + (thread:get(name) or 0)
    end
  end
  local percentiles = {}
  for _, p in ipairs(PERCENTILES) do
    table.insert(percentiles, {p, latency:percentile(p)})
  end
  io.write("WRK_JSON ", encode({
    duration_us = summary.duration, requests = summary.requests, bytes = summary.bytes,
    errors = summary.errors, counters = totals,
    latency_us = {min = latency.min, max = latency.max, mean = latency.mean,
                  stdev = latency.stdev, percentiles = percentiles},
  }), "\n")
end

return report
