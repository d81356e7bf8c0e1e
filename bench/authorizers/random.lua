-- wrk script: GET /client/access_token for a uniformly random authorizer per
-- request, so the hub's lookup path (not one hot cache line) is measured.
-- Configured through the environment (scripts/bench-authorizers sets these):
--   WH_BENCH_COMPONENT  component appid            (required)
--   WH_BENCH_PREFIX     authorizer appid prefix    (default "wxa")
--   WH_BENCH_COUNT      authorizers 1..N exist     (default 100000)
-- Appids are PREFIX + the 1-based index zero-padded to 9 digits, exactly as
-- wechat-sim's POST /sim/authorizers names them.

local component = os.getenv("WH_BENCH_COMPONENT")
local prefix = os.getenv("WH_BENCH_PREFIX") or "wxa"
local count = tonumber(os.getenv("WH_BENCH_COUNT") or "100000")

if component == nil or component == "" then
  error("WH_BENCH_COMPONENT is not set")
end

local next_id = 0

function setup(thread)
  -- Distinct seeds per thread; otherwise every thread replays one sequence.
  next_id = next_id + 1
  thread:set("seed", os.time() * 1000 + next_id)
end

function init(args)
  math.randomseed(seed)
end

function request()
  local appid = string.format("%s%09d", prefix, math.random(1, count))
  return wrk.format("GET", "/client/access_token?appid=" .. component ..
                    "&authorizer_appid=" .. appid)
end
