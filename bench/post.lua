-- wrk script: POST the Datadog webhook with a unique "id" and "alert_cycle_key" per request.
--
--   wrk -t2 -c64 -d10s --latency -s bench/post.lua URL -- PAYLOAD_JSON TOKEN NONCE
--
-- Unique ids matter: a repeated id is a duplicate delivery, which the service answers 200
-- without storing anything, and that would flatter its throughput. Ids are all digits, like
-- Datadog's event ids and like bench/load.py.
-- done() prints one "WRK_JSON {...}" line so run.py need not parse wrk's human output.

local threads = {}
local next_tid = 0

function setup(thread)
  next_tid = next_tid + 1
  thread:set("tid", next_tid)
  table.insert(threads, thread)
end

local pieces = {}
local headers = {}
local prefix = ""
local counter = 0
statuses = {}

local function split(text, sep)
  local out, start = {}, 1
  while true do
    local i, j = string.find(text, sep, start, true)
    if not i then
      table.insert(out, string.sub(text, start))
      return out
    end
    table.insert(out, string.sub(text, start, i - 1))
    start = j + 1
  end
end

function init(args)
  local f = assert(io.open(args[1], "r"))
  local template = f:read("*a")
  f:close()
  template = string.gsub(template, "%s+$", "")
  -- One timestamp for the whole run is enough: nothing in the service rejects a 10 s old date.
  local ts = string.format("%d", os.time() * 1000)
  template = table.concat(split(template, "{{TS}}"), ts)
  pieces = split(template, "{{ID}}")
  headers["Content-Type"] = "application/json"
  headers["X-Responder-Token"] = args[2]
  -- NONCE (digits) keeps ids unique across runs against the same database; tid across threads.
  prefix = args[3] .. string.format("%02d", tid)
end

function request()
  counter = counter + 1
  local id = prefix .. string.format("%09d", counter)
  return wrk.format("POST", nil, headers, table.concat(pieces, id))
end

function response(status, hdrs, body)
  local key = tostring(status)
  statuses[key] = (statuses[key] or 0) + 1
end

function done(summary, latency, requests)
  local merged = {}
  for _, thread in ipairs(threads) do
    local counts = thread:get("statuses")
    if counts then
      for k, v in pairs(counts) do
        merged[k] = (merged[k] or 0) + v
      end
    end
  end
  local parts = {}
  for k, v in pairs(merged) do
    table.insert(parts, string.format('"%s":%d', k, v))
  end
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,'
      .. '"max_us":%d,"statuses":{%s},"errors":{"connect":%d,"read":%d,"write":%d,'
      .. '"status":%d,"timeout":%d}}\n',
    summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    table.concat(parts, ","),
    e.connect, e.read, e.write, e.status, e.timeout))
end
