-- wrk script: GET a random chunk path from the list file given after "--".
-- Usage: wrk ... -s random-chunk.lua URL -- paths.txt [prefix]
local paths = {}
local prefix = ""

function init(args)
  for line in io.lines(args[1]) do paths[#paths + 1] = line end
  prefix = args[2] or ""
  math.randomseed(os.time() + math.floor(os.clock() * 1000000))
end

function request()
  return wrk.format("GET", prefix .. paths[math.random(#paths)])
end

function done(summary, latency, requests)
  io.write(string.format("RESULT requests=%d bytes=%d seconds=%.3f errors_status=%d p50_ms=%.2f p99_ms=%.2f\n",
    summary.requests, summary.bytes, summary.duration / 1e6, summary.errors.status,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
