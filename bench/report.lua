-- Shared by the wrk scripts (dofile'd from each): counts answers by status, so that a run
-- that "succeeds" by failing fast, and the 503s of a bounded queue, show; at the end prints
-- one line `JSON {…}` that the bench drivers parse.
failures, unavailable = 0, 0  -- globals: done() reads them with thread:get
response = function(status, headers, body)
  if status ~= 200 then
    failures = failures + 1
    if status == 503 then unavailable = unavailable + 1 end
  end
end

-- Each thread's counters live in its own Lua state; done() runs in the main one, so it
-- reads them back through wrk's thread objects.
local threads = {}
setup = function(thread) threads[#threads + 1] = thread end

done = function(summary, latency, requests)
  local non200, status503 = 0, 0
  for _, thread in ipairs(threads) do
    non200 = non200 + (thread:get("failures") or 0)
    status503 = status503 + (thread:get("unavailable") or 0)
  end
  io.write(string.format("JSON {\"requests_per_second\": %.1f, \"p50_ms\": %.3f, \"p99_ms\": %.3f, \"p999_ms\": %.3f, "
    .. "\"max_ms\": %.3f, \"non_2xx\": %d, \"non_200\": %d, \"status_503\": %d, \"socket_errors\": %d}\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    latency:percentile(99.9) / 1000, latency.max / 1000, summary.errors.status, non200, status503,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
