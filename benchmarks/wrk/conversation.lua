-- conversation.lua: the /initial -> /followup flow.
--   wrk -s conversation.lua URL -- SEED [FOLLOWUP_FRACTION] [ALPHABET]
-- A followup is only sent for a uuid whose /initial has been answered 200 (its uuid
-- is read from the response body and queued), so it never races its /initial on
-- another connection. Each 200 /initial is followed up with probability
-- FOLLOWUP_FRACTION (default 0.5): the same request mix for every backend, unlike
-- client.py whose followups depend on how well the model guesses.
-- Symbols are drawn from ALPHABET (default a-z); the staleness probe keeps one back.
local report = require("report")

local HEADERS = {["Content-Type"] = "application/json"}
local fraction, alphabet = 0.5, "abcdefghijklmnopqrstuvwxyz"
local queue, head, tail = {}, 1, 0
initial_ok, followup_ok, other = 0, 0, 0

setup = report.setup

function init(args)
  report.seed(args)
  fraction = tonumber(args[2]) or fraction
  alphabet = args[3] or alphabet
end

local function uuid4()
  local r = math.random
  return string.format("%04x%04x-%04x-4%03x-%x%03x-%04x%04x%04x",
    r(0, 65535), r(0, 65535), r(0, 65535), r(0, 4095), r(8, 11), r(0, 4095),
    r(0, 65535), r(0, 65535), r(0, 65535))
end

function request()
  if head <= tail then
    local uuid = queue[head]
    queue[head] = nil
    head = head + 1
    return wrk.format("POST", "/followup", HEADERS, '{"uuid":"' .. uuid .. '"}')
  end
  local i = math.random(1, #alphabet)
  return wrk.format("POST", "/initial", HEADERS,
    '{"uuid":"' .. uuid4() .. '","symbol":"' .. alphabet:sub(i, i) .. '"}')
end

function response(status, headers, body)
  report.count(status)
  if status ~= 200 then return end
  if body:find('"vowel"', 1, true) then
    initial_ok = initial_ok + 1
    if math.random() < fraction then
      tail = tail + 1
      queue[tail] = body:match('"uuid"%s*:%s*"([%x%-]+)"')
    end
  elseif body:find('"followup"', 1, true) then
    followup_ok = followup_ok + 1
  else
    other = other + 1
  end
end

function done(summary, latency, requests)
  report.done(summary, latency, {"initial_ok", "followup_ok", "other"})
end
