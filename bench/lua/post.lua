-- POST a small body; print the run's figures as one JSON line for bench/load.py.
-- BENCH_BODY, BENCH_CONTENT_TYPE and BENCH_AUTHORIZATION come from the environment.
wrk.method = os.getenv("BENCH_METHOD") or "POST"  -- bench/front.py GETs /health with it
if wrk.method ~= "GET" then
  wrk.body = os.getenv("BENCH_BODY") or '{"score":"AL 24: FL 7"}'
  wrk.headers["Content-Type"] = os.getenv("BENCH_CONTENT_TYPE") or "application/json"
end
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
