-- wrk script: GET /userinfo with Bearer access tokens, cycling through a file of them.
-- Usage: wrk ... -s bench/userinfo.lua URL/userinfo -- TOKEN_FILE
-- counting.lua sits next to this script (setup, response, done).
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "counting.lua")

function init(args)
  start_counting()
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
