-- wrk script: POST check-ins for a set of provisioned devices (one credential per line: "deviceId secret").
-- Usage: wrk ... -s check-in.lua URL -- devices.txt product versionId digest
local devices = {}
local body = ""

function init(args)
  for line in io.lines(args[1]) do
    local id, secret = line:match("^(%S+)%s+(%S+)$")
    devices[#devices + 1] = { id = id, auth = "Basic " .. secret }
  end
  body = string.format('{"product":"%s","installedVersionId":%s,"inventoryDigest":"%s","files":[]}', args[2], args[3], args[4])
  math.randomseed(os.time() + math.floor(os.clock() * 1000000))
end

function request()
  local d = devices[math.random(#devices)]
  return wrk.format("POST", "/v1/devices/" .. d.id .. "/check-in",
    { ["Authorization"] = d.auth, ["Content-Type"] = "application/json" }, body)
end

function done(summary, latency, requests)
  io.write(string.format("RESULT requests=%d bytes=%d seconds=%.3f errors_status=%d p50_ms=%.2f p99_ms=%.2f\n",
    summary.requests, summary.bytes, summary.duration / 1e6, summary.errors.status,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
