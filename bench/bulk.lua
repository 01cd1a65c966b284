-- wrk script: POST /increments with NDJSON bodies of `lines` increments (default 1,000), every
-- key a fresh random UUID, values 1…1000; with `idempotency` as the second argument each
-- body also carries a fresh Idempotency-Key.
-- Usage: wrk -t2 -c16 -d10s -s bench/bulk.lua http://127.0.0.1:8080/increments -- 1000 [idempotency]
--
-- Building 1,000 UUIDs per request in Lua would cost more CPU than the server spends on
-- them, so a body is made of fixed parts and one fresh part: each line's key is a random
-- 48-bit prefix drawn once per line at start (distinct within a body) followed by a random
-- 72-bit suffix drawn once per request, `pppppppp-pppp-4sss-8sss-ssssssssssss`. Every key
-- of every request is thus new (unless two requests draw the same 72-bit suffix), and a
-- body costs one string.format and one table.concat.
math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
local random = math.random
local parts = {}
local lines = 1000
local idempotency = false
local headers = { ["Content-Type"] = "application/x-ndjson" }

local function hex16() return random(0, 0xffff) end

init = function(args)
  lines = tonumber(args[1] or "1000")
  idempotency = args[2] == "idempotency"
  local seen = {}
  for i = 1, lines do
    local prefix
    repeat
      prefix = string.format("%04x%04x-%04x", hex16(), hex16(), hex16())
    until not seen[prefix]
    seen[prefix] = true
    parts[3 * i - 2] = '{"key":"' .. prefix .. '-4'
    parts[3 * i - 1] = ""  -- the request's suffix
    parts[3 * i] = '","value":' .. random(1, 1000) .. '}\n'
  end
end

request = function()
  local suffix = string.format("%03x-%x%03x-%04x%04x%04x", random(0, 0xfff), random(8, 11), random(0, 0xfff),
    hex16(), hex16(), hex16())
  for i = 2, 3 * lines, 3 do parts[i] = suffix end
  if idempotency then
    headers["Idempotency-Key"] = string.format("%04x%04x%04x%04x%04x%04x%04x%04x",
      hex16(), hex16(), hex16(), hex16(), hex16(), hex16(), hex16(), hex16())
  end
  return wrk.format("POST", nil, headers, table.concat(parts))
end

-- Counting answers and the closing JSON line: bench/report.lua, beside this script.
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "report.lua")
