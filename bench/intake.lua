-- wrk script: customer intake, POST /api/v1/requests with a unique address per request.
--
--   wrk -t2 -c64 -d20s --latency -s bench/intake.lua http://127.0.0.1:18181/api/v1/requests -- RUN_ID
--
-- Every request uses bench-<run>-<thread>-<n>@example.test, so the per-email
-- rate limit never triggers and every request is a new row. RUN_ID (optional)
-- keeps addresses unique across runs against the same database.
-- At the end it prints one machine-readable line, parsed by bench/run.sh:
--   intake-status 2xx=N 202=N 429=N 4xx=N 5xx=N other=N

local threads = {}
local next_id = 0

-- setup phase (main Lua state): number the threads, keep them for done().
function setup(thread)
   next_id = next_id + 1
   thread:set("thread_id", next_id)
   table.insert(threads, thread)
end

-- running phase (one Lua state per wrk thread).
function init(args)
   run_id = args[1] or string.format("%d%04d", os.time(), math.random(0, 9999))
   counter = 0
   n2xx, n202, n429, n4xx, n5xx, nother = 0, 0, 0, 0, 0, 0
   path = wrk.path
   headers = { ["Content-Type"] = "application/json", ["Accept"] = "application/json" }
end

function request()
   counter = counter + 1
   local body = string.format(
      '{"kind":"question","email":"bench-%s-%d-%d@example.test","locale":"en"}',
      run_id, thread_id, counter)
   return wrk.format("POST", path, headers, body)
end

function response(status, _headers, _body)
   if status == 202 then
      n202 = n202 + 1
      n2xx = n2xx + 1
   elseif status >= 200 and status < 300 then
      n2xx = n2xx + 1
   elseif status == 429 then
      n429 = n429 + 1
      n4xx = n4xx + 1
   elseif status >= 400 and status < 500 then
      n4xx = n4xx + 1
   elseif status >= 500 then
      n5xx = n5xx + 1
   else
      nother = nother + 1
   end
end

-- done phase (main Lua state again): sum the per-thread counters.
function done(_summary, _latency, _requests)
   local t = { n2xx = 0, n202 = 0, n429 = 0, n4xx = 0, n5xx = 0, nother = 0 }
   for _, thread in ipairs(threads) do
      for k, _ in pairs(t) do
         t[k] = t[k] + (thread:get(k) or 0)
      end
   end
   io.write(string.format("intake-status 2xx=%d 202=%d 429=%d 4xx=%d 5xx=%d other=%d\n",
      t.n2xx, t.n202, t.n429, t.n4xx, t.n5xx, t.nother))
end
