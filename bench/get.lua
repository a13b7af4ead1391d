-- wrk script for the GET endpoints (discovery, JWKS): counts answers other than 200.
-- Usage: wrk ... -s bench/get.lua URL
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  non200 = 0
  sent = 0
end

function request()
  sent = sent + 1
  return wrk.format("GET")
end

function response(status, headers, body)
  if status ~= 200 then non200 = non200 + 1 end
end

function done(summary, latency, requests)
  local bad, total = 0, 0
  for _, t in ipairs(threads) do
    bad = bad + t:get("non200")
    total = total + t:get("sent")
  end
  io.write(string.format("bench: non200=%d sent=%d\n", bad, total))
end
