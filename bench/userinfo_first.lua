-- wrk script: GET /userinfo, each request with an access token of the pool never presented
-- before (so the IdP verifies its signature; a token presented again is remembered).
-- Usage: wrk -t1 ... -s bench/userinfo_first.lua URL/userinfo -- TOKEN_FILE FIRST
--   TOKEN_FILE: one token a line; FIRST: 1-based line of the first token to use.
-- Run it with -t1: every wrk thread has its own counter.
extra_counters = {"exhausted"}
-- counting.lua sits next to this script (setup, response, done).
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "counting.lua")

function init(args)
  start_counting()
  load_pool(args[1], args[2])
end

function request()
  return wrk.format("GET", nil, {["Authorization"] = "Bearer " .. next_from_pool()})
end
