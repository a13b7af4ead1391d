-- wrk script: POST /token, grant_type=client_credentials, client_secret_basic.
-- Usage: wrk ... -s bench/client_credentials.lua URL/token -- "Basic <base64 id:secret>"
-- counting.lua sits next to this script (setup, response, done).
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "counting.lua")

function init(args)
  start_counting()
  req = wrk.format("POST", nil, {
    ["Authorization"] = args[1],
    ["Content-Type"] = "application/x-www-form-urlencoded",
  }, "grant_type=client_credentials")
end

function request()
  sent = sent + 1
  return req
end
