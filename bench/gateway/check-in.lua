-- wrk script: POST check-ins, each pre-signed once by sign.py ("deviceId<TAB>Authorization value" per line, devices
-- round-robin, each device's sequence numbers increasing). A signed check-in is accepted once, so each thread sends
-- its own share of the lines in file order (line i goes to thread i mod THREADS): with the device count a multiple
-- of THREADS and larger than the connections, a device's requests never overtake each other. Lines running out
-- shows as non-2xx (replayed_sequence): generate more.
-- Usage: wrk ... -s check-in.lua URL -- signed.txt product versionId digest threads
local requests = {}
local next_request = 1
local body = ""
local thread_count = 0

function setup(thread)
  thread:set("id", thread_count)
  thread_count = thread_count + 1
end

function init(args)
  local threads = tonumber(args[5])
  local i = 0
  for line in io.lines(args[1]) do
    if i % threads == id then
      local device, auth = line:match("^(%S+)\t(.+)$")
      requests[#requests + 1] = { path = "/v1/devices/" .. device .. "/check-in", auth = auth }
    end
    i = i + 1
  end
  body = string.format('{"product":"%s","installedVersionId":%s,"inventoryDigest":"%s","files":[]}', args[2], args[3], args[4])
end

function request()
  local r = requests[next_request]
  next_request = next_request % #requests + 1
  return wrk.format("POST", r.path, { ["Authorization"] = r.auth, ["Content-Type"] = "application/json" }, body)
end

function done(summary, latency, requests)
  io.write(string.format("RESULT requests=%d bytes=%d seconds=%.3f errors_status=%d p50_ms=%.2f p99_ms=%.2f\n",
    summary.requests, summary.bytes, summary.duration / 1e6, summary.errors.status,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
