-- wrk script: POST the body in the file named by BODY (environment variable) to the URL.
local f = assert(io.open(os.getenv("BODY"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"

done = function(summary, latency, requests)
  io.write(string.format(
    "RESULT requests=%d errors=%d status=%d timeouts=%d p50=%.1f p99=%.1f seconds=%.3f\n",
    summary.requests,
    summary.errors.connect + summary.errors.read + summary.errors.write,
    summary.errors.status, summary.errors.timeout,
    latency:percentile(50), latency:percentile(99), summary.duration / 1e6))
end
