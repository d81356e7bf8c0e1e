#!/usr/bin/env bash
# Builds the .deb (scripts/package), installs it with dpkg -i, checks files,
# conffile, user, unit and the installed binaries, runs the installed hub with
# the packaged config, then purges the package and checks nothing is left.
# Usage: package_test.sh SOURCE_DIR BUILD_DIR
# Exits 77 (skipped) when not root or without dpkg.
set -euo pipefail
src="$1"; build="$2"
skip() { echo "SKIPPED: $*"; exit 77; }
# Captured first: with pipefail, `cmd | grep -q` fails when grep exits early.
installed() { local st; st=$(dpkg-query -W -f='${Status}' wechat-hub 2>/dev/null) || return 1; [[ "$st" == *" installed" ]]; }
fail() { echo "FAIL: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || skip "the package test installs a .deb and must run as root"
command -v dpkg >/dev/null && command -v dpkg-deb >/dev/null || skip "dpkg is not available"
# One package test per machine at a time (worktrees share the system).
exec 9>/tmp/wechat-hub-package-test.lock
flock -w 600 9 || fail "another package test holds /tmp/wechat-hub-package-test.lock"
if installed; then
  skip "a wechat-hub package is already installed on this machine; the test will not replace it"
fi
if getent passwd wechat-hub >/dev/null; then
  skip "a wechat-hub user exists without the package; the test will not touch it"
fi

work=$(mktemp -d /tmp/wh-package-XXXXXX)
hub_pid=
cleanup() {
  [ -n "$hub_pid" ] && kill -9 "$hub_pid" 2>/dev/null || true
  if installed; then
    dpkg --purge wechat-hub >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

echo "== build the package"
deb=$("$src/scripts/package" --build-dir "$build" --out "$work/out" | tail -n1)
[ -f "$deb" ] || fail "scripts/package produced no .deb"
echo "$deb"
info=$(dpkg-deb --info "$deb")
grep -q "Package: wechat-hub" <<<"$info" || fail "wrong package name"
contents=$(dpkg-deb --contents "$deb")
# Only the hub goes in: no headers or static libraries of the client library.
if grep -E '\.(hpp|a)$' <<<"$contents"; then fail "the .deb carries development files"; fi

echo "== install"
dpkg -i "$deb" >"$work/dpkg-install.log" 2>&1 || { cat "$work/dpkg-install.log"; fail "dpkg -i failed"; }

echo "== files"
for f in /usr/bin/wechat-hub /usr/bin/wechat-sim /usr/bin/wechat; do
  [ -x "$f" ] || fail "$f missing"
done
for f in /etc/wechat-hub/hub.toml /lib/systemd/system/wechat-hub.service; do
  [ -f "$f" ] || fail "$f missing"
done
if [ -f "$src/deploy/prometheus/wechat-hub-rules.yml" ]; then
  cmp -s "$src/deploy/prometheus/wechat-hub-rules.yml" /usr/share/wechat-hub/wechat-hub-rules.yml \
    || fail "alert rules missing or different under /usr/share/wechat-hub"
else
  echo "deploy/prometheus/wechat-hub-rules.yml not in this tree; no alert rules to check"
fi
conffiles=$(dpkg-query -W -f='${Conffiles}\n' wechat-hub)
grep -q "/etc/wechat-hub/hub.toml" <<<"$conffiles" || fail "hub.toml is not a conffile"
# The config is commented and holds no secret values.
grep -q '^#' /etc/wechat-hub/hub.toml || fail "hub.toml has no comments"
if grep -En '^[[:space:]]*(secret|token|encoding_aes_key|key_sha256)[[:space:]]*=' /etc/wechat-hub/hub.toml; then
  fail "hub.toml sets a secret"
fi
[ "$(stat -c '%U:%G %a' /etc/wechat-hub/hub.toml)" = "root:wechat-hub 640" ] \
  || fail "hub.toml ownership/mode: $(stat -c '%U:%G %a' /etc/wechat-hub/hub.toml)"
for b in wechat-hub wechat-sim wechat; do
  "/usr/bin/$b" --help >/dev/null || fail "/usr/bin/$b --help failed (libraries?)"
done

echo "== user"
IFS=: read -r _ _ uid _ _ home shell < <(getent passwd wechat-hub) || fail "no wechat-hub user"
[ "$uid" -lt 1000 ] || fail "wechat-hub is not a system user (uid $uid)"
[ "$shell" = /usr/sbin/nologin ] || fail "wechat-hub has a login shell: $shell"
[ "$home" = /var/lib/wechat-hub ] || fail "wechat-hub home: $home"

echo "== unit"
unit=/lib/systemd/system/wechat-hub.service
for line in "Type=notify" "StateDirectory=wechat-hub" "ExecReload=/bin/kill -HUP \$MAINPID" \
            "ProtectSystem=strict" "NoNewPrivileges=true" "PrivateTmp=true" "CapabilityBoundingSet=" \
            "SystemCallFilter=@system-service" "User=wechat-hub" \
            "ExecStart=/usr/bin/wechat-hub --config /etc/wechat-hub/hub.toml"; do
  grep -qxF "$line" "$unit" || fail "unit lacks: $line"
done
if command -v systemd-analyze >/dev/null; then
  # Offline verification; warnings about the host (no running systemd) are
  # not about the unit, so only lines naming it count.
  out=$(systemd-analyze verify "$unit" 2>&1 || true)
  if grep -i "wechat-hub" <<<"$out"; then fail "systemd-analyze verify: $out"; fi
  echo "systemd-analyze verify: clean"
else
  echo "systemd-analyze not available; unit checked by content only"
fi

echo "== run the installed hub with the packaged config"
/usr/bin/wechat-hub --check-config --config /etc/wechat-hub/hub.toml
# The packaged config, with a private data dir and any free port, run as the
# service user (as systemd would).
data="$work/state"
install -d -o wechat-hub -g wechat-hub -m 0700 "$data"
cfg="$work/hub.toml"
sed -e "s|^data_dir = .*|data_dir = \"$data\"|" -e 's|^listen = .*|listen = "127.0.0.1:0"|' \
  /etc/wechat-hub/hub.toml >"$cfg"
chown root:wechat-hub "$cfg"; chmod 0640 "$cfg"
# The hub writes its port file (and the temp file beside it) here.
chown wechat-hub "$work"
setpriv --reuid=wechat-hub --regid=wechat-hub --clear-groups \
  /usr/bin/wechat-hub --config "$cfg" --port-file "$work/hub.port" >>"$work/hub.log" 2>&1 &
hub_pid=$!
for _ in $(seq 200); do
  [ -s "$work/hub.port" ] && break
  kill -0 "$hub_pid" 2>/dev/null || { cat "$work/hub.log"; fail "the installed hub exited"; }
  sleep 0.1
done
port=$(cat "$work/hub.port" 2>/dev/null || true)
[ -n "$port" ] || { cat "$work/hub.log"; fail "the installed hub did not listen"; }
health=$(curl -fsS "http://127.0.0.1:$port/healthz") || fail "/healthz"
grep -q '"status":"ok"' <<<"$health" || fail "/healthz: $health"
[ -f "$data/master.key" ] || fail "no master key in the data dir"
[ "$(stat -c %U "$data/master.key")" = wechat-hub ] || fail "master key not owned by the service user"
kill -HUP "$hub_pid"
for _ in $(seq 100); do grep -q "reloaded " "$work/hub.log" && break; sleep 0.1; done
grep -q "reloaded " "$work/hub.log" || { cat "$work/hub.log"; fail "SIGHUP did not reload"; }
curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null || fail "/healthz after reload"
kill -TERM "$hub_pid"
rc=0; wait "$hub_pid" || rc=$?
hub_pid=
[ "$rc" -eq 0 ] || { cat "$work/hub.log"; fail "the installed hub exited $rc on SIGTERM"; }

echo "== purge"
dpkg --purge wechat-hub >"$work/dpkg-purge.log" 2>&1 || { cat "$work/dpkg-purge.log"; fail "dpkg --purge failed"; }
for f in /usr/bin/wechat-hub /usr/bin/wechat-sim /usr/bin/wechat /etc/wechat-hub \
         /lib/systemd/system/wechat-hub.service /usr/share/wechat-hub /var/lib/wechat-hub; do
  [ ! -e "$f" ] || fail "$f is left after purge"
done
! getent passwd wechat-hub >/dev/null || fail "the wechat-hub user is left after purge"
! getent group wechat-hub >/dev/null || fail "the wechat-hub group is left after purge"
if installed; then fail "still installed"; fi
echo "package test ok"
