-- wrk(1) script: inclusion proofs of random entries against one tree size,
-- the load of `vellum bench`'s proof phase, from a load generator outside
-- the project (Debian: apt-get install wrk).
--
--   VELLUM_SIZE=$(curl -s http://127.0.0.1:8080/checkpoint | sed -n 2p) \
--     wrk -t2 -c64 -d10s -s scripts/wrk-proofs.lua http://127.0.0.1:8080

local size = tonumber(os.getenv("VELLUM_SIZE") or "")
if not size or size < 1 then
  error("set VELLUM_SIZE to a published tree size (line 2 of /checkpoint)")
end

function init(args)
  math.randomseed(os.time() + math.floor(os.clock() * 1e6))
end

function request()
  local i = math.random(0, size - 1)
  return wrk.format("GET", "/v1/proof/inclusion?index=" .. i .. "&size=" .. size)
end
