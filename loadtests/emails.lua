-- wrk script: POST /v1/render batches as NDJSON streams, and check every response.
--
--   wrk -s loadtests/emails.lua http://127.0.0.1:PORT -- BODIES_FILE RECIPIENTS CHECK_FILE [PATH]
--
-- BODIES_FILE has one JSON body a line, each with RECIPIENTS recipients; loadtests/run.py
-- writes it (tests/bench/emails.py makes the recipients). A response is complete when it
-- answers 200 with one line per recipient, each starting {"index":N, with N counting from 0,
-- then the summary line, whose "recipients" is RECIPIENTS. When wrk ends, the counts of all
-- threads go to CHECK_FILE as one line of name=value pairs, with the first failure seen.

local counter = 0
local threads = {}

function setup(thread)
  thread:set("thread_index", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  local file = args[1]
  expected = tonumber(args[2])
  check_file = args[3]
  local path = args[4] or "/v1/render"
  if not file or not expected or not check_file then
    error("usage: -- BODIES_FILE RECIPIENTS CHECK_FILE [PATH]")
  end
  local headers = { ["Content-Type"] = "application/json", ["Accept"] = "application/x-ndjson" }
  requests = {}
  for line in io.lines(file) do
    if line ~= "" then
      requests[#requests + 1] = wrk.format("POST", path, headers, line)
    end
  end
  if #requests == 0 then
    error("no request bodies in " .. file)
  end
  next_index = ((thread_index or 0) * 997) % #requests
  responses, complete, incomplete, lines, bytes = 0, 0, 0, 0, 0
  blocks, fallbacks, hits, misses = 0, 0, 0, 0
  first_failure = ""
end

function request()
  next_index = next_index % #requests + 1
  return requests[next_index]
end

local function summary_field(line, name)
  return tonumber(string.match(line, '"' .. name .. '":(%d+)')) or 0
end

-- Why a response is not complete, or nil when it is.
local function failure(status, body)
  if status ~= 200 then
    return "status " .. status .. ": " .. string.sub(body, 1, 200)
  end
  local position, index = 1, 0
  while true do
    local newline = string.find(body, "\n", position, true)
    if newline == nil then
      return "no newline at the end of the stream, after " .. index .. " lines"
    end
    local line = string.sub(body, position, newline - 1)
    position = newline + 1
    if index < expected then
      local prefix = '{"index":' .. index .. ","
      if string.sub(line, 1, #prefix) ~= prefix then
        return "line " .. (index + 1) .. " is not recipient " .. index .. ": " .. string.sub(line, 1, 80)
      end
      lines = lines + 1
      index = index + 1
    else
      if string.sub(line, 1, 11) ~= '{"summary":' then
        return "line " .. (index + 1) .. " is not the summary: " .. string.sub(line, 1, 80)
      end
      if summary_field(line, "recipients") ~= expected then
        return "the summary counts another number of recipients: " .. line
      end
      if position <= #body then
        return "more after the summary line"
      end
      blocks = blocks + summary_field(line, "blocks")
      fallbacks = fallbacks + summary_field(line, "fallbacks")
      hits = hits + summary_field(line, "cache_hits")
      misses = misses + summary_field(line, "cache_misses")
      return nil
    end
  end
end

function response(status, headers, body)
  responses = responses + 1
  bytes = bytes + #body
  local why = failure(status, body)
  if why == nil then
    complete = complete + 1
  else
    incomplete = incomplete + 1
    if first_failure == "" then
      first_failure = why
    end
  end
end

function done(summary, latency, requests)
  local names = { "responses", "complete", "incomplete", "lines", "bytes", "blocks", "fallbacks", "hits", "misses" }
  local totals = {}
  local first = ""
  for _, name in ipairs(names) do
    totals[name] = 0
  end
  for _, thread in ipairs(threads) do
    for _, name in ipairs(names) do
      totals[name] = totals[name] + (thread:get(name) or 0)
    end
    local why = thread:get("first_failure") or ""
    if first == "" then
      first = why
    end
  end
  local out = assert(io.open(threads[1]:get("check_file"), "w"))
  for _, name in ipairs(names) do
    out:write(string.format("%s=%.0f ", name, totals[name]))
  end
  out:write("first_failure=" .. string.gsub(first, "[\r\n]", " ") .. "\n")
  out:close()
end
