-- dashboard.lua: the business user's reads, /dashboard/symbol and /dashboard/range.
--   wrk -s dashboard.lua URL -- SEED LOWER UPPER [DELAY_MS] [RANGE_SHARE]
-- /dashboard/symbol/<random a-z>, or with probability RANGE_SHARE (default 0.5)
-- /dashboard/range/LOWER/UPPER (e.g. today's date twice).
-- DELAY_MS > 0 paces each connection (wrk's delay()), for a low, steady read rate
-- beside a write load.
local report = require("report")

local LETTERS = "abcdefghijklmnopqrstuvwxyz"
local range_path, pause, range_share = nil, 0, 0.5
symbol_ok, range_ok = 0, 0

setup = report.setup

function init(args)
  report.seed(args)
  range_path = "/dashboard/range/" .. args[2] .. "/" .. args[3]
  pause = tonumber(args[4]) or 0
  range_share = tonumber(args[5]) or range_share
end

function delay()
  return pause
end

function request()
  if math.random() < range_share then
    return wrk.format("GET", range_path)
  end
  local i = math.random(1, 26)
  return wrk.format("GET", "/dashboard/symbol/" .. LETTERS:sub(i, i))
end

function response(status, headers, body)
  report.count(status)
  if status == 200 then
    if body:sub(1, 1) == "[" then range_ok = range_ok + 1 else symbol_ok = symbol_ok + 1 end
  end
end

function done(summary, latency, requests)
  report.done(summary, latency, {"symbol_ok", "range_ok"})
end
