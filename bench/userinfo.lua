-- wrk script: GET /userinfo with Bearer access tokens, cycling through a file of them.
-- Usage: wrk ... -s bench/userinfo.lua URL/userinfo -- TOKEN_FILE
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  non200 = 0
  sent = 0
  reqs = {}
  for line in io.lines(args[1]) do
    if #line > 0 then
      reqs[#reqs + 1] = wrk.format("GET", nil, {["Authorization"] = "Bearer " .. line})
    end
  end
end

function request()
  sent = sent + 1
  return reqs[(sent % #reqs) + 1]
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
