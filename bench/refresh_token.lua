-- wrk script: POST /token, grant_type=refresh_token, each request with a refresh token of
-- the pool never used before (rotation makes a used one invalid and revokes its family).
-- Usage: wrk -t1 ... -s bench/refresh_token.lua URL/token -- "Basic <..>" TOKEN_FILE FIRST
--   TOKEN_FILE: one token a line; FIRST: 1-based line of the first token to use.
-- Prints how many requests it generated, so the caller knows where the next run starts.
-- Run it with -t1: every wrk thread has its own counter.
extra_counters = {"exhausted"}
-- counting.lua sits next to this script (setup, response, done).
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "counting.lua")

function init(args)
  start_counting()
  load_pool(args[2], args[3])
  headers = {
    ["Authorization"] = args[1],
    ["Content-Type"] = "application/x-www-form-urlencoded",
  }
end

function request()
  return wrk.format("POST", nil, headers, "grant_type=refresh_token&refresh_token=" .. next_from_pool())
end
