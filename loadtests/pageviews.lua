-- wrk script: POST JSON bodies read from a file (one body a line), cycling through them.
--
--   wrk -s loadtests/pageviews.lua http://127.0.0.1:PORT -- BODIES_FILE [PATH]
--
-- PATH defaults to /v1/decide. loadtests/run.py writes BODIES_FILE (1,000 page views
-- from loadtests/pageview_mix.py) and also uses this script for the /echo ceiling.
-- Every request is formatted once in init(): the load generator should spend its
-- time sending, not building strings.

local counter = 0

function setup(thread)
  thread:set("thread_index", counter)
  counter = counter + 1
end

function init(args)
  local file = args[1]
  local path = args[2] or "/v1/decide"
  local headers = { ["Content-Type"] = "application/json" }
  requests = {}
  for line in io.lines(file) do
    if line ~= "" then
      requests[#requests + 1] = wrk.format("POST", path, headers, line)
    end
  end
  if #requests == 0 then
    error("no request bodies in " .. file)
  end
  -- Threads start at different places so that they do not send the same body at the same time.
  next_index = ((thread_index or 0) * 997) % #requests
end

function request()
  next_index = next_index % #requests + 1
  return requests[next_index]
end
