-- wrk script for the GET endpoints (discovery, JWKS): counts answers other than 200.
-- Usage: wrk ... -s bench/get.lua URL
-- counting.lua sits next to this script (setup, response, done).
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "counting.lua")

function init(args)
  start_counting()
end

function request()
  sent = sent + 1
  return wrk.format("GET")
end
