-- wrk script: POST /token, grant_type=client_credentials, client_secret_basic.
-- Usage: wrk ... -s bench/client_credentials.lua URL/token -- "Basic <base64 id:secret>"
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  non200 = 0
  sent = 0
  req = wrk.format("POST", nil, {
    ["Authorization"] = args[1],
    ["Content-Type"] = "application/x-www-form-urlencoded",
  }, "grant_type=client_credentials")
end

function request()
  sent = sent + 1
  return req
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
