-- wrk script: GET /client/access_token for one authorizer on every request,
-- built per request like random.lua does, so the two runs cost wrk the same
-- and their ratio is the hub's (scripts/bench-authorizers prints it).
--   WH_BENCH_COMPONENT  component appid  (required)
--   WH_BENCH_ONE        authorizer appid (required)

local component = os.getenv("WH_BENCH_COMPONENT")
local appid = os.getenv("WH_BENCH_ONE")

if component == nil or component == "" or appid == nil or appid == "" then
  error("WH_BENCH_COMPONENT and WH_BENCH_ONE must be set")
end

function request()
  return wrk.format("GET", "/client/access_token?appid=" .. component ..
                    "&authorizer_appid=" .. appid)
end
