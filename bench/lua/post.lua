-- POST a body; print the run's figures as one JSON line for bench/measure.py.  The body is
-- BENCH_BODY, or the file BENCH_BODY_FILE (an NDJSON batch of 1,000 lines is over what an
-- environment variable may hold); BENCH_CONTENT_TYPE and BENCH_AUTHORIZATION likewise.
wrk.method = "POST"
local path = os.getenv("BENCH_BODY_FILE")
if path and path ~= "" then
  local file = assert(io.open(path, "rb"))
  wrk.body = file:read("*a")
  file:close()
else
  wrk.body = os.getenv("BENCH_BODY") or '{"score":"AL 24: FL 7"}'
end
wrk.headers["Content-Type"] = os.getenv("BENCH_CONTENT_TYPE") or "application/json"
local authorization = os.getenv("BENCH_AUTHORIZATION")
if authorization and authorization ~= "" then
  wrk.headers["Authorization"] = authorization
end

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests":%d,"duration_us":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,' ..
    '"mean_us":%.1f,"max_us":%d,"connect_errors":%d,"read_errors":%d,"write_errors":%d,' ..
    '"status_errors":%d,"timeouts":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.mean, latency.max, errors.connect, errors.read, errors.write,
    errors.status, errors.timeout))
end
