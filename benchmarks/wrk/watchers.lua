-- watchers.lua: open pages, simulated. Each connection asks what one open page asks
-- (server/page/page.js): GET /dashboard/overview and GET /dashboard/range/LOWER/UPPER,
-- once each per INTERVAL_MS, one every half interval on average. The pause is drawn at
-- random (0.5-1.5 times the half interval), so that connections started together spread
-- out as pages opened at different moments would.
--   wrk -s watchers.lua URL -- SEED LOWER UPPER INTERVAL_MS
local report = require("report")

local range_path, half = nil, 2500
local turn = 0
overview_ok, range_ok = 0, 0

setup = report.setup

function init(args)
  report.seed(args)
  range_path = "/dashboard/range/" .. args[2] .. "/" .. args[3]
  half = (tonumber(args[4]) or 5000) / 2
end

function delay()
  return math.floor(half * (0.5 + math.random()))
end

function request()
  turn = turn + 1
  if turn % 2 == 1 then
    return wrk.format("GET", "/dashboard/overview")
  end
  return wrk.format("GET", range_path)
end

function response(status, headers, body)
  report.count(status)
  if status == 200 then
    if body:sub(1, 1) == "[" then range_ok = range_ok + 1 else overview_ok = overview_ok + 1 end
  end
end

function done(summary, latency, requests)
  report.done(summary, latency, {"overview_ok", "range_ok"})
end
