-- wrk script: POST /increment with a fresh random UUID key on every request.
-- Usage: wrk -t2 -c64 -d10s -s bench/increment.lua http://127.0.0.1:8080/increment
math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
local random = math.random
local headers = { ["Content-Type"] = "application/json" }

request = function()
  local key = string.format("%04x%04x-%04x-4%03x-%04x-%04x%04x%04x",
    random(0, 0xffff), random(0, 0xffff), random(0, 0xffff), random(0, 0xfff),
    random(0x8000, 0xbfff), random(0, 0xffff), random(0, 0xffff), random(0, 0xffff))
  return wrk.format("POST", nil, headers, '{"key":"' .. key .. '","value":1}')
end

-- Counting answers and the closing JSON line: bench/report.lua, beside this script.
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "report.lua")
