-- wrk script: the page views of pageviews.lua, each connection pausing between requests.
--
--   wrk -s loadtests/paced_pageviews.lua http://127.0.0.1:PORT -- BODIES_FILE PAUSE_MS
--
-- A load that does not saturate the server: with C connections and a pause of P ms, at most
-- C * 1000 / P requests a second. At saturation every latency is mostly queueing (p50 is about
-- connections / throughput), which would hide what a reload adds to the tail.
-- Run from the repository root: the request logic is pageviews.lua's.

dofile("loadtests/pageviews.lua")

local pause_ms = 10
local read_bodies = init

function init(args)
  read_bodies({ args[1] })
  pause_ms = tonumber(args[2] or "10")
end

function delay()
  return pause_ms
end
