-- wrk(1) script: single-event appends with unique event IDs, the same
-- shape as `vellum bench` sends, for a cross-check of its figures with a
-- load generator from outside the project (Debian: apt-get install wrk).
--
--   VELLUM_TOKEN=$(cat DATA/gateway.token) \
--     wrk -t2 -c64 -d10s -s scripts/wrk-append.lua http://127.0.0.1:8080
--
-- Every 2xx answer is a durable append (the log answers after the fsync);
-- wrk prints any other status as "Non-2xx or 3xx responses".

local token = os.getenv("VELLUM_TOKEN")
if not token or token == "" then
  error("set VELLUM_TOKEN to an append token (e.g. DATA/gateway.token)")
end

local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

local counter = 0
local run = tostring(os.time())
local head = '{"agent":"agent-3","args_hash":"sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08","attrs":{"pad":""},"event_id":"wrk-'
local tail = '","latency_ms":31,"owner":"payments-oncall","principal":"svc-payments@corp.example","provenance":"untrusted","provenance_source":"inbound email","result":{"status":200},"risk":12,"rule":"refunds-under-100","session":"sess-7","target":"api.stripe.com","tool":"stripe.refund","ts":"2026-06-20T14:07:31.120Z","verdict":"allow"}'
local headers = {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. token}

function request()
  counter = counter + 1
  local body = head .. run .. "-" .. tid .. "-" .. counter .. tail
  return wrk.format("POST", "/v1/events", headers, body)
end
