"""Summarise benchmarks/reactor.sh results: medians over passes, ratios in the
same run (echo: to tokio and to the std floor; redis: to redis-server)."""
import json
import statistics
import sys
from collections import defaultdict


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else float("nan")


rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
passes = max((r["pass"] for r in rows), default=0)
print(f"# Reactor benchmark ({passes} interleaved passes, medians)\n")

echo = defaultdict(lambda: defaultdict(list))
for r in rows:
    if r["bench"] == "echo":
        d = r["r"]
        e = echo[r["case"]][r["server"]]
        e.append(d)

print("## Echo: server on CPU 0, one-thread epoll load generator on CPU 1\n")
print("| case | server | req/s | ×tokio | ×std | req per server CPU-s | ×tokio | server µs CPU/req | p99 µs | load CPU busy |")
print("|---|---|---|---|---|---|---|---|---|---|")
for case, servers in echo.items():
    m = {}
    for s, ds in servers.items():
        m[s] = {
            "rps": med([d["rps"] for d in ds]),
            "eff": med([d.get("req_per_server_cpu_s") for d in ds]),
            "us": med([d.get("server_cpu_us_per_req") for d in ds]),
            "p99": med([d["p99_us"] for d in ds]),
            "load": med([d["load_cpu_frac"] for d in ds]),
        }
    t, f = m.get("tokio"), m.get("std")
    for s, v in m.items():
        rt = v["rps"] / t["rps"] if t else float("nan")
        rf = v["rps"] / f["rps"] if f else float("nan")
        et = v["eff"] / t["eff"] if t and t["eff"] else float("nan")
        print(f"| {case} | {s} | {v['rps']:,.0f} | {rt:.2f} | {rf:.2f} | {v['eff']:,.0f} | {et:.2f} | {v['us']:.2f} | {v['p99']:.0f} | {v['load']:.2f} |")

redis = defaultdict(lambda: defaultdict(list))
for r in rows:
    if r["bench"] == "redis":
        redis[r["case"]][r["server"]].append(r)
if redis:
    print("\n## mini_redis: redis-benchmark -t set,get, server on CPU 0, client on CPU 1\n")
    print("| case | server | SET req/s | ×redis | GET req/s | ×redis | GET p99 ms | server µs CPU/req |")
    print("|---|---|---|---|---|---|---|---|")
    for case, servers in redis.items():
        m = {}
        for s, rs in servers.items():
            m[s] = {
                "set": med([r.get("SET", {}).get("rps") for r in rs]),
                "get": med([r.get("GET", {}).get("rps") for r in rs]),
                "p99": med([r.get("GET", {}).get("p99_ms") for r in rs]),
                "us": med([r["server_cpu_s"] * 1e6 / r["requests"] for r in rs if r["requests"]]),
            }
        base = m.get("redis-server")
        for s, v in m.items():
            if v["set"] != v["set"] and v["get"] != v["get"]:  # NaN: no result
                print(f"| {case} | {s} | did not finish | | | | | |")
                continue
            rs_ = v["set"] / base["set"] if base and base["set"] else float("nan")
            rg = v["get"] / base["get"] if base and base["get"] else float("nan")
            print(f"| {case} | {s} | {v['set']:,.0f} | {rs_:.2f} | {v['get']:,.0f} | {rg:.2f} | {v['p99']:.3f} | {v['us']:.2f} |")
