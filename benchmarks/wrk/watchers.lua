-- watchers.lua: open pages, simulated. Each connection asks what one open page asks
-- (server/page/page.js): GET /dashboard/overview?lower=LOWER&upper=UPPER (the overview
-- with the range dashboard of the page's window in it), once per INTERVAL_MS. The pause
-- is drawn at random (0.5-1.5 times the interval), so that connections started together
-- spread out as pages opened at different moments would.
--   wrk -s watchers.lua URL -- SEED LOWER UPPER INTERVAL_MS
local report = require("report")

local path, interval = nil, 5000
overview_ok, range_ok = 0, 0

setup = report.setup

-- As page.js's encodeURIComponent does it.
local function encode(text)
  return (text:gsub("[^%w%-_%.!~%*'%(%)]", function(c) return string.format("%%%02X", c:byte()) end))
end

function init(args)
  report.seed(args)
  path = "/dashboard/overview?lower=" .. encode(args[2]) .. "&upper=" .. encode(args[3])
  interval = tonumber(args[4]) or 5000
end

function delay()
  return math.floor(interval * (0.5 + math.random()))
end

function request()
  return wrk.format("GET", path)
end

function response(status, headers, body)
  report.count(status)
  if status == 200 then
    overview_ok = overview_ok + 1
    -- server/overview.py puts the range part's status first.
    if body:find('"range": {"status": 200,', 1, true) then range_ok = range_ok + 1 end
  end
end

function done(summary, latency, requests)
  report.done(summary, latency, {"overview_ok", "range_ok"})
end
