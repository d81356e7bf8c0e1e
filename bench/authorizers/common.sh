# Shell helpers shared by scripts/bench-authorizers and
# scripts/bench-cluster-authorizers (sourced, not run). The sourcing script
# sets `bench_name` (log prefix), `root` (the checkout) and, before calling
# the sim_* helpers, `sim_url`.

helper=(python3 "$root/bench/authorizers/helper.py")

# wait_file FILE PID: until FILE is non-empty; fails if PID exits or after 20 s.
wait_file() {
  for _ in $(seq 400); do
    [ -s "$1" ] && return 0
    kill -0 "$2" 2>/dev/null || return 1
    sleep 0.05
  done
  return 1
}
log() { echo "[$bench_name] $*" >&2; }
# "key value" lines from the helper -> value of `key`.
pick() { awk -v k="$1" '$1 == k { $1 = ""; sub(/^ /, ""); print; exit }'; }
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
mb() { awk -v kb="$1" 'BEGIN { printf "%.1f MiB", kb / 1024 }'; }
sim_stats() { curl -sf "$sim_url/sim/stats" | "${helper[@]}" stats; }
sim_reset() { curl -sf -X POST "$sim_url/sim/reset" >/dev/null; }
# One-line summary of upstream calls since the last reset.
upstream_line() {
  sim_stats | awk '$1 == "total" { t = $2; next } { s = s sprintf(" %s=%s", $1, $2) }
                   END { printf "%s%s", t, (s == "" ? "" : " (" substr(s, 2) ")") }'
}
# Sum of a metric's samples (all label sets) at a hub's /metrics.
metric_sum() {
  curl -sf --max-time 10 "$1/metrics" | awk -v m="$2" '$1 == m || index($1, m "{") == 1 { s += $2 } END { print s + 0 }'
}
# sim_push_ticket HUB_URL COMPONENT: register the hub's event URL with the sim
# and push a verify ticket through it (the hub needs one to refresh).
sim_push_ticket() {
  local url="$1/wechat/component/$2/events"
  curl -sf -X POST "$sim_url/sim/register_push" \
    -d "{\"component_appid\":\"$2\",\"url\":\"$url\"}" >/dev/null
  local res
  res=$(curl -sf -X POST "$sim_url/sim/push" -d "{\"component_appid\":\"$2\"}")
  if ! python3 -c 'import json,sys; r=json.loads(sys.argv[1]); sys.exit(0 if r.get("status")==200 and r.get("body")=="success" else 1)' "$res"; then
    echo "verify-ticket push was not accepted by the hub: $res" >&2
    exit 1
  fi
}
