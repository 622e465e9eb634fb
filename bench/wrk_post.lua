-- wrk script for bench/run.py: POST BENCH_BODY (a Gemini generateContent body, or a Chat
-- Completions body for direct-openai) to BENCH_PATH, the key BENCH_KEY in the header
-- BENCH_KEY_HEADER (default x-goog-api-key), and print a one-line JSON summary (prefixed
-- BENCH_JSON) when done. Latencies are in microseconds; a request completes with its last byte.
wrk.method = "POST"
wrk.path = assert(os.getenv("BENCH_PATH"), "BENCH_PATH not set")
wrk.body = assert(os.getenv("BENCH_BODY"), "BENCH_BODY not set")
wrk.headers["Content-Type"] = "application/json"
wrk.headers[os.getenv("BENCH_KEY_HEADER") or "x-goog-api-key"] =
  assert(os.getenv("BENCH_KEY"), "BENCH_KEY not set")

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect_errors":%d,'
      .. '"read_errors":%d,"write_errors":%d,"status_errors":%d,"timeouts":%d,'
      .. '"p50_us":%d,"p90_us":%d,"p99_us":%d,"mean_us":%.1f,"max_us":%d}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.mean, latency.max))
end
