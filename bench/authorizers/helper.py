#!/usr/bin/env python3
"""JSON shaping and timing for scripts/bench-authorizers (stdlib only).

Subcommands:
  import   POST the sim's authorizer list to the hub admin API in chunks
  warm     read every authorizer's token once (concurrent keep-alive clients)
  startup  after a hub (re)start: ms until its port file, /healthz and a token
  stats    summarize wechat-sim's GET /sim/stats
  sample   (cluster) pick random authorizers, read each through every node
  owners   (cluster) owner and replicas of listed keys (GET /admin/cluster)
  subset   (cluster) the first K authorizers of the import file that a node holds
All output lines are "key value" pairs so the bash side can pick them up.
"""

import argparse
import http.client
import json
import os
import sys
import threading
import time
import urllib.parse


def load_authorizers(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)["authorizers"]


def connect(port):
    return http.client.HTTPConnection("127.0.0.1", port, timeout=30)


def cmd_import(a):
    items = load_authorizers(a.file)
    conn = connect(a.port)
    path = "/admin/components/%s/authorizers" % urllib.parse.quote(a.component, safe="")
    imported = 0
    started = time.monotonic()
    for i in range(0, len(items), a.chunk):
        body = json.dumps({"authorizers": items[i:i + a.chunk]}, separators=(",", ":"))
        for _ in range(a.retries + 1):
            conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
            res = conn.getresponse()
            data = res.read()
            if res.status != 503:
                break
            time.sleep(0.5)  # a cluster whose membership is changing: retry
        if res.status != 200:
            print("import failed at offset %d: HTTP %d %s" % (i, res.status, data[:300]),
                  file=sys.stderr)
            return 1
        imported += int(json.loads(data).get("imported", 0))
    print("imported", imported)
    print("import_s %.2f" % (time.monotonic() - started))
    return 0 if imported == len(items) else 1


def cmd_warm(a):
    items = load_authorizers(a.file)
    appids = [x["authorizer_appid"] for x in items]
    ok = [0] * a.threads
    failed = [0] * a.threads
    first_error = []
    prefix = "/client/access_token?appid=%s&authorizer_appid=" % urllib.parse.quote(a.component)

    def worker(k):
        conn = connect(a.port)
        for appid in appids[k::a.threads]:
            try:
                conn.request("GET", prefix + appid)
                res = conn.getresponse()
                body = res.read()
                if res.status == 200:
                    ok[k] += 1
                    continue
                if not first_error:
                    first_error.append("HTTP %d %s" % (res.status, body[:200]))
            except (OSError, http.client.HTTPException) as e:
                if not first_error:
                    first_error.append(repr(e))
                conn.close()
                conn = connect(a.port)
            failed[k] += 1

    started = time.monotonic()
    threads = [threading.Thread(target=worker, args=(k,)) for k in range(a.threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    print("warm_ok", sum(ok))
    print("warm_failed", sum(failed))
    print("warm_s %.2f" % elapsed)
    print("warm_rps %.0f" % (len(appids) / elapsed if elapsed > 0 else 0))
    if first_error:
        print("warm_first_error", first_error[0].replace("\n", " "))
    return 0


def http_ok(port, path):
    try:
        conn = connect(port)
        conn.request("GET", path)
        res = conn.getresponse()
        res.read()
        conn.close()
        return res.status == 200
    except (OSError, http.client.HTTPException):
        return False


def cmd_startup(a):
    """Milliseconds since t0 (time.time_ns() taken by bash before exec)."""
    t0 = a.t0_ns / 1e9
    deadline = time.time() + a.timeout
    ms = lambda: (time.time() - t0) * 1000.0
    port = None
    while port is None:
        try:
            with open(a.port_file, encoding="utf-8") as f:
                text = f.read().strip()
            if text:
                port = int(text)
        except (OSError, ValueError):
            pass
        if port is None:
            if time.time() > deadline:
                print("startup_failed port-file")
                return 1
            time.sleep(0.002)
    print("port_ms %.0f" % ms())
    while not http_ok(port, "/healthz"):
        if time.time() > deadline:
            print("startup_failed healthz")
            return 1
        time.sleep(0.002)
    print("healthz_ms %.0f" % ms())
    path = "/client/access_token?appid=%s&authorizer_appid=%s" % (
        urllib.parse.quote(a.component), urllib.parse.quote(a.authorizer))
    while not http_ok(port, path):
        if time.time() > deadline:
            print("startup_failed token")
            return 1
        time.sleep(0.002)
    print("token_ms %.0f" % ms())
    return 0


def cmd_stats(a):
    stats = json.load(sys.stdin)
    calls = stats.get("calls", {})
    print("total", stats.get("total", 0))
    for path in sorted(calls):
        print(path.rsplit("/", 1)[-1], sum(calls[path].values()))
    return 0


def read_token(conn, component, appid):
    """(status, access_token or error text) of one GET /client/access_token."""
    conn.request("GET", "/client/access_token?appid=%s&authorizer_appid=%s" % (
        urllib.parse.quote(component), urllib.parse.quote(appid)))
    res = conn.getresponse()
    body = res.read()
    if res.status != 200:
        return res.status, body[:200].decode("utf-8", "replace")
    return 200, json.loads(body).get("access_token", "")


def cmd_sample(a):
    """Reads `count` random authorizers (seeded; or --keys) through each node:
    the first read may fetch the token upstream, the others must serve the
    same token without a call (any node serves any key)."""
    import random
    if a.keys:
        with open(a.keys, encoding="utf-8") as f:
            appids = [line.strip() for line in f if line.strip()]
    else:
        items = load_authorizers(a.file)
        rnd = random.Random(a.seed)
        appids = [x["authorizer_appid"] for x in rnd.sample(items, min(a.count, len(items)))]
    ports = [int(p) for p in a.ports.split(",")]
    ok = failed = mismatched = 0
    first_error = []
    started = time.monotonic()
    conns = [connect(p) for p in ports]
    for i, appid in enumerate(appids):
        tokens = set()
        for k in range(len(ports)):
            port_i = (i + k) % len(ports)
            try:
                status, tok = read_token(conns[port_i], a.component, appid)
            except (OSError, http.client.HTTPException) as e:
                status, tok = 0, repr(e)
                conns[port_i].close()
                conns[port_i] = connect(ports[port_i])
            if status == 200:
                ok += 1
                tokens.add(tok)
            else:
                failed += 1
                if not first_error:
                    first_error.append("node :%d %s: HTTP %d %s" % (ports[port_i], appid, status, tok))
        if len(tokens) > 1:
            mismatched += 1
    elapsed = time.monotonic() - started
    if a.out:
        with open(a.out, "w", encoding="utf-8") as f:
            f.write("\n".join(appids) + "\n")
    print("sample_keys", len(appids))
    print("sample_ok", ok)
    print("sample_failed", failed)
    print("sample_mismatched", mismatched)
    print("sample_s %.2f" % elapsed)
    if first_error:
        print("sample_first_error", first_error[0].replace("\n", " "))
    return 0


def placement(conn, key):
    conn.request("GET", "/admin/cluster?key=" + urllib.parse.quote(key, safe=""))
    res = conn.getresponse()
    body = res.read()
    if res.status != 200:
        raise RuntimeError("GET /admin/cluster?key=%s: HTTP %d %s" % (key, res.status, body[:200]))
    k = json.loads(body)["key"]
    return k["owner"], k["replicas"]


def cmd_owners(a):
    """Of the appids in --keys: which `--node` owns, and which it holds."""
    with open(a.keys, encoding="utf-8") as f:
        appids = [line.strip() for line in f if line.strip()]
    conn = connect(a.port)
    owned, held = [], []
    for appid in appids:
        owner, holders = placement(conn, a.component + "/" + appid)
        if owner == a.node:
            owned.append(appid)
        if a.node in holders:
            held.append(appid)
    with open(a.out, "w", encoding="utf-8") as f:
        f.write("\n".join(owned) + ("\n" if owned else ""))
    print("owned", len(owned))
    print("held", len(held))
    return 0


def cmd_subset(a):
    """Writes an import file of the first `count` authorizers (from a random,
    seeded start) that `--node` holds (owner or replica), for a re-import."""
    import random
    items = load_authorizers(a.file)
    start = random.Random(a.seed).randrange(len(items))
    conn = connect(a.port)
    chosen, owned = [], 0
    for i in range(len(items)):
        x = items[(start + i) % len(items)]
        owner, holders = placement(conn, a.component + "/" + x["authorizer_appid"])
        if a.node in holders:
            chosen.append(x)
            owned += owner == a.node
            if len(chosen) == a.count:
                break
    with open(a.out, "w", encoding="utf-8") as f:
        json.dump({"authorizers": chosen}, f)
    print("subset", len(chosen))
    print("subset_owned", owned)
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("import")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--component", required=True)
    s.add_argument("--file", required=True)
    s.add_argument("--chunk", type=int, default=5000)
    s.add_argument("--retries", type=int, default=0, help="retries of a chunk answered 503")
    s = sub.add_parser("warm")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--component", required=True)
    s.add_argument("--file", required=True)
    s.add_argument("--threads", type=int, default=8)
    s = sub.add_parser("startup")
    s.add_argument("--t0-ns", type=int, required=True)
    s.add_argument("--port-file", required=True)
    s.add_argument("--component", required=True)
    s.add_argument("--authorizer", required=True)
    s.add_argument("--timeout", type=float, default=120)
    sub.add_parser("stats")
    s = sub.add_parser("sample")
    s.add_argument("--ports", required=True, help="comma-separated HTTP ports of the nodes")
    s.add_argument("--component", required=True)
    s.add_argument("--file", help="the sim's authorizer list to sample from")
    s.add_argument("--keys", help="instead of --file: read exactly these appids, one a line")
    s.add_argument("--count", type=int, default=1000)
    s.add_argument("--seed", type=int, default=1)
    s.add_argument("--out", help="write the sampled appids here, one a line")
    s = sub.add_parser("owners")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--component", required=True)
    s.add_argument("--keys", required=True, help="appids, one a line")
    s.add_argument("--node", required=True)
    s.add_argument("--out", required=True, help="the appids --node owns, one a line")
    s = sub.add_parser("subset")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--component", required=True)
    s.add_argument("--file", required=True)
    s.add_argument("--node", required=True)
    s.add_argument("--count", type=int, required=True)
    s.add_argument("--seed", type=int, default=2)
    s.add_argument("--out", required=True)
    a = p.parse_args()
    return {"import": cmd_import, "warm": cmd_warm, "startup": cmd_startup,
            "stats": cmd_stats,
            "sample": cmd_sample, "owners": cmd_owners, "subset": cmd_subset}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
