-- Shared by the wrk scripts (loaded with dofile): every thread counts what it sent and the
-- answers other than 200 (and any extra counters a script names in `extra_counters`);
-- done() prints the totals as one "bench:" line that bench/run.py reads. Scripts whose
-- tokens are each used once take them with load_pool() and next_from_pool().
local threads = {}
extra_counters = extra_counters or {}

function setup(thread)
  table.insert(threads, thread)
end

function start_counting()
  non200 = 0
  sent = 0
  for _, name in ipairs(extra_counters) do _G[name] = 0 end
end

function response(status, headers, body)
  if status ~= 200 then non200 = non200 + 1 end
end

function done(summary, latency, requests)
  local totals = {non200 = 0, sent = 0}
  local names = {"non200", "sent"}
  for _, name in ipairs(extra_counters) do
    totals[name] = 0
    names[#names + 1] = name
  end
  for _, t in ipairs(threads) do
    for _, name in ipairs(names) do totals[name] = totals[name] + t:get(name) end
  end
  local parts = {}
  for _, name in ipairs(names) do parts[#parts + 1] = name .. "=" .. totals[name] end
  io.write("bench: " .. table.concat(parts, " ") .. "\n")
end

-- A pool of tokens used once each: TOKEN_FILE (one a line), from its 1-based line FIRST.
function load_pool(path, first)
  pool = {}
  for line in io.lines(path) do
    if #line > 0 then pool[#pool + 1] = line end
  end
  nexti = tonumber(first)
end

-- The next unused token. Pool used up: a token that cannot be valid rather than one used
-- before (its answer counts as non-200; the script must name "exhausted" in extra_counters).
function next_from_pool()
  local token = pool[nexti]
  if token == nil then
    exhausted = exhausted + 1
    token = "pool-exhausted"
  end
  nexti = nexti + 1
  sent = sent + 1
  return token
end
