-- wrk script of the steady benchmark's check-in storm (bench/fleet/SteadyBench/WrkStorm.cs writes its input).
-- wrk -s storm.lua URL -- DIR PIPELINE [PATH]
--   DIR holds part-0 .. part-(T-1): one pre-signed check-in a line, "path<TAB>authorization<TAB>body". Each wrk thread
--   claims one part (an atomic rename, so two threads never send the same device's sequence numbers) and sends its lines
--   in order, PIPELINE requests at once per connection, wrapping around at the end (the wrapped ones are replays: 401).
--   PATH, when given, replaces every request with GET PATH (same headers): the client's rate against a trivial endpoint.
-- STORM_HONOUR=1 in the environment: the storm's devices honour Retry-After as the agent does (DeviceAgent UpdateSession:
--   a 429 or a 503 node_busy is waited out for the server's Retry-After, capped at an hour, plus a random 0-999 ms of its
--   own, RetryAfterJitterMilliseconds; the node spreads the whole seconds over [R, 2R]). Every answer pushes its wait (0 unless refused) on a per-thread FIFO and delay(), which wrk calls once
--   before each connection's next request, pops one, so exactly as many connections sleep as were refused, each for one
--   refusal's Retry-After; which connection sleeps for which refusal follows wrk's event order and is approximate
--   (requests are not tied to devices here anyway: each line is the next pre-signed check-in of the thread's file).
--   Without it the storm never waits (a broken or hostile client).
-- done() prints one line "wrk-storm {json}": answers by status, 429/503 with Retry-After, socket errors, latency, and
-- with STORM_HONOUR the waits taken (count and seconds).
local requests, count, next_index, depth, host = {}, 0, 0, 1, nil
local honour = os.getenv("STORM_HONOUR") == "1"
local waits, wait_head, wait_tail = {}, 1, 0
-- Globals, not locals: done() reads them from each thread with thread:get.
s200, s401, s503, s429, sother, retry_after, wrapped, slept, slept_ms = 0, 0, 0, 0, 0, 0, 0, 0, 0
local threads = {}

function init(args)
  local dir = args[1]
  depth = tonumber(args[2] or "1")
  if honour and depth ~= 1 then error("storm.lua: STORM_HONOUR needs pipeline 1 (one wait per answer)") end
  local trivial = args[3]
  local part = nil
  for k = 0, 255 do
    if os.rename(dir .. "/part-" .. k, dir .. "/claimed-" .. k) then part = dir .. "/claimed-" .. k break end
  end
  if part == nil then error("storm.lua: no unclaimed part-N left in " .. dir .. " (one per wrk thread)") end
  -- Each thread its own jitter sequence (the part it claimed tells the threads apart).
  math.randomseed(os.time() * 256 + tonumber(part:match("(%d+)$")))
  host = wrk.headers["Host"] or (wrk.host .. ":" .. wrk.port)
  for line in io.lines(part) do
    local path, auth, body = line:match("^([^\t]*)\t([^\t]*)\t(.*)$")
    if trivial then
      requests[#requests + 1] = "GET " .. trivial .. " HTTP/1.1\r\nHost: " .. host .. "\r\nAuthorization: " .. auth .. "\r\n\r\n"
    else
      requests[#requests + 1] = "POST " .. path .. " HTTP/1.1\r\nHost: " .. host .. "\r\nAuthorization: " .. auth ..
        "\r\nContent-Type: application/json\r\nContent-Length: " .. #body .. "\r\n\r\n" .. body
    end
  end
  count = #requests
  if count == 0 then error("storm.lua: " .. part .. " is empty") end
end

function setup(thread)
  threads[#threads + 1] = thread
end

local function one()
  next_index = next_index + 1
  if next_index > count then next_index = 1 wrapped = wrapped + 1 end
  return requests[next_index]
end

function request()
  if depth == 1 then return one() end
  local batch = {}
  for k = 1, depth do batch[k] = one() end
  return table.concat(batch)
end

function response(status, headers, body)
  local wait = 0
  if status == 200 then s200 = s200 + 1
  elseif status == 401 then s401 = s401 + 1
  elseif status == 503 or status == 429 then
    if status == 503 then s503 = s503 + 1 else s429 = s429 + 1 end
    local after = headers["Retry-After"] or headers["retry-after"]
    if after then
      retry_after = retry_after + 1
      -- The agent waits the server's delta-seconds, at most an hour (UpdateSession.CapServerWait), plus 0-999 ms at
      -- random (UpdateSession.RetryAfterJitterMilliseconds).
      wait = math.min(tonumber(after) or 0, 3600) * 1000 + math.random(0, 999)
    end
  else sother = sother + 1 end
  if honour then
    wait_tail = wait_tail + 1
    waits[wait_tail] = wait
  end
end

if honour then
  function delay()
    if wait_head > wait_tail then return 0 end
    local wait = waits[wait_head]
    waits[wait_head] = nil
    wait_head = wait_head + 1
    if wait > 0 then slept = slept + 1 slept_ms = slept_ms + wait end
    return wait
  end
end

function done(summary, latency, requests_stats)
  local t = { s200 = 0, s401 = 0, s503 = 0, s429 = 0, sother = 0, retry_after = 0, wrapped = 0, slept = 0, slept_ms = 0 }
  for _, thread in ipairs(threads) do
    for k, _ in pairs(t) do t[k] = t[k] + (thread:get(k) or 0) end
  end
  local e = summary.errors
  io.write(string.format('wrk-storm {"requests":%d,"seconds":%.3f,"status200":%d,"status401":%d,"status503":%d,' ..
    '"status429":%d,"statusOther":%d,"retryAfter":%d,"wrapped":%d,"connectErrors":%d,"readErrors":%d,"writeErrors":%d,' ..
    '"timeouts":%d,"p50Ms":%.2f,"p99Ms":%.2f,"maxMs":%.2f,"waits":%d,"waitSeconds":%.1f}\n',
    summary.requests, summary.duration / 1e6, t.s200, t.s401, t.s503, t.s429, t.sother, t.retry_after, t.wrapped,
    e.connect, e.read, e.write, e.timeout, latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
    t.slept, t.slept_ms / 1000))
end
