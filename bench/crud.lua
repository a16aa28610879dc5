-- One wrk script for every system: the operation and the URL shapes come from
-- the environment, so Verdict, PocketBase and json-server get the same requests.
--   OP       get_one | get_page | post | patch | post_delete
--   ITEM     path of one record, with %s for its id   (/v1/collections/books/records/%s)
--   LIST     path of the collection                   (/v1/collections/books/records)
--   PAGE     query of a 20-record page                (?limit=20)
--   PATCH_CT content type of a patch                  (application/merge-patch+json)
--   AUTH     Authorization header value, or empty
--   ENCODING Accept-Encoding header value, or empty (none sent)
--   SEEDED   how many seeded records (ids s00000000000000 ...)
--   PORTS    optional, "9801,9802": wrk's threads connect to these ports of
--            127.0.0.1 in turn (a round robin over instances, by thread)
local op = os.getenv("OP")
local item = os.getenv("ITEM")
local list = os.getenv("LIST")
local page = os.getenv("PAGE") or ""
local patch_ct = os.getenv("PATCH_CT") or "application/json"
local auth = os.getenv("AUTH") or ""
local encoding = os.getenv("ENCODING") or ""
local seeded = tonumber(os.getenv("SEEDED") or "1000")

local round = tonumber(os.getenv("ROUND") or "1")
local threads = {}
local counter = 0
-- `tid` is a global each thread gets from setup() (thread:set), so threads
-- (and rounds) make distinct ids.

local ports = os.getenv("PORTS") or ""

function setup(thread)
  thread:set("tid", #threads + 1)
  if ports ~= "" then
    local list = {}
    for p in string.gmatch(ports, "[^,]+") do table.insert(list, p) end
    thread.addr = wrk.lookup("127.0.0.1", list[(#threads % #list) + 1])[1]
  end
  table.insert(threads, thread)
end

local function headers(ct)
  local h = {}
  if auth ~= "" then h["Authorization"] = auth end
  if encoding ~= "" then h["Accept-Encoding"] = encoding end
  if ct then h["Content-Type"] = ct end
  return h
end

local function seeded_id(n)
  return string.format("s%014d", n % seeded)
end

function request()
  counter = counter + 1
  if op == "get_one" then
    return wrk.format("GET", string.format(item, seeded_id(counter * 7919)), headers())
  elseif op == "get_page" then
    return wrk.format("GET", list .. page, headers())
  elseif op == "post" then
    local id = string.format("p%d%02d%011d", round, tid, counter)
    return wrk.format("POST", list, headers("application/json"),
      string.format('{"id":"%s","title":"Bench","n":%d}', id, counter))
  elseif op == "patch" then
    return wrk.format("PATCH", string.format(item, seeded_id(counter * 31)), headers(patch_ct),
      string.format('{"n":%d}', counter))
  elseif op == "post_delete" then
    -- Odd requests create; even ones delete what was created 64 requests
    -- earlier, far more than the connections in flight, so a DELETE never
    -- overtakes its POST.
    if counter % 2 == 0 and counter > 128 then
      local id = string.format("d%d%02d%011d", round, tid, counter - 129)
      return wrk.format("DELETE", string.format(item, id), headers())
    end
    local id = string.format("d%d%02d%011d", round, tid, counter)
    return wrk.format("POST", list, headers("application/json"),
      string.format('{"id":"%s","title":"Bench","n":%d}', id, counter))
  end
end
