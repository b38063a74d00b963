-- wrk script: GET a random chunk path from the list file given after "--".
-- Usage: wrk ... -s random-chunk.lua URL -- paths.txt [prefix]
-- A line is "path" (mirrors: no credential) or "path<TAB>Authorization value" (the gateway: pre-signed by sign.py;
-- store requests are not sequence-checked, so a signed line may be sent any number of times within the clock skew).
local paths = {}
local prefix = ""

function init(args)
  for line in io.lines(args[1]) do
    local p, auth = line:match("^([^\t]+)\t(.+)$")
    paths[#paths + 1] = { path = p or line, auth = auth }
  end
  prefix = args[2] or ""
  math.randomseed(os.time() + math.floor(os.clock() * 1000000))
end

function request()
  local e = paths[math.random(#paths)]
  local headers = {}
  if e.auth then headers["Authorization"] = e.auth end
  return wrk.format("GET", prefix .. e.path, headers)
end

function done(summary, latency, requests)
  io.write(string.format("RESULT requests=%d bytes=%d seconds=%.3f errors_status=%d p50_ms=%.2f p99_ms=%.2f\n",
    summary.requests, summary.bytes, summary.duration / 1e6, summary.errors.status,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
