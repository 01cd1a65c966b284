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

-- Count non-200 answers so a run that "succeeds" by failing fast is visible.
local failures = 0
response = function(status, headers, body)
  if status ~= 200 then failures = failures + 1 end
end

done = function(summary, latency, requests)
  io.write(string.format("JSON {\"requests_per_second\": %.0f, \"p50_ms\": %.3f, \"p99_ms\": %.3f, \"p999_ms\": %.3f, \"non_2xx\": %d}\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    latency:percentile(99.9) / 1000, summary.errors.status))
end
