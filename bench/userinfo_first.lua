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
  pool = {}
  for line in io.lines(args[1]) do
    if #line > 0 then pool[#pool + 1] = line end
  end
  nexti = tonumber(args[2])
end

function request()
  local token = pool[nexti]
  if token == nil then
    -- Pool used up: send a token that cannot be valid rather than reuse one (non-200).
    exhausted = exhausted + 1
    token = "pool-exhausted"
  end
  nexti = nexti + 1
  sent = sent + 1
  return wrk.format("GET", nil, {["Authorization"] = "Bearer " .. token})
end
