-- wrk script: GET /counts/{key} with a key picked at random from a file of keys, one a line.
-- Usage: wrk -t2 -c64 -d10s -s bench/reads.lua http://127.0.0.1:8080 -- keys.txt
math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
local random = math.random
local paths = {}

init = function(args)
  local file = assert(io.open(assert(args[1], "give the keys file after --"), "r"))
  for line in file:lines() do
    if #line > 0 then paths[#paths + 1] = "/counts/" .. line end
  end
  file:close()
  assert(#paths > 0, "the keys file is empty")
end

request = function()
  return wrk.format("GET", paths[random(#paths)])
end

-- Counting answers and the closing JSON line: bench/report.lua, beside this script.
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "report.lua")
