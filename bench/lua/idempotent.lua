-- POST like post.lua, with an Idempotency-Key chosen by BENCH_IDEMPOTENCY:
--   none: no header; unique: a new key per request (claim + store in Redis); repeat: one key (replays).
-- BENCH_RUN_ID keeps the keys of one run apart from every other run's.
local body = os.getenv("BENCH_BODY") or '{"score":"AL 24: FL 7"}'
local mode = os.getenv("BENCH_IDEMPOTENCY") or "none"
local run_id = os.getenv("BENCH_RUN_ID") or tostring(os.time())
local headers = { ["Content-Type"] = os.getenv("BENCH_CONTENT_TYPE") or "application/json" }
local authorization = os.getenv("BENCH_AUTHORIZATION")
if authorization and authorization ~= "" then
  headers["Authorization"] = authorization
end
local counter = 0

function request()
  if mode == "unique" then
    counter = counter + 1
    headers["Idempotency-Key"] = run_id .. "-" .. counter
  elseif mode == "repeat" then
    headers["Idempotency-Key"] = run_id .. "-repeated"
  end
  return wrk.format("POST", nil, headers, body)
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
