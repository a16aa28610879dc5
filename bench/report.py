"""Parses wrk's output and writes BENCHMARKS.md (used by bench/run.sh).

    python3 bench/report.py parse NAME ROUND WRK_OUTPUT    -> one JSON line
    python3 bench/report.py write RESULTS WORKDIR OUT [key=value ...]
"""
import json
import os
import platform
import re
import statistics
import subprocess
import sys
from collections import defaultdict

UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def perf_shares(report):
    """Sums a flat `perf report --sort sym` by who owns each symbol."""
    owners = [("verdict", "the contract's layers (verdict)"), ("hyper", "hyper"), ("tokio", "tokio"),
              ("axum", "axum/tower/http"), ("tower", "axum/tower/http"), ("http::", "axum/tower/http"),
              ("mi_", "allocator"), ("governor", "governor/dashmap"), ("dashmap", "governor/dashmap")]
    totals = defaultdict(float)
    for line in report.splitlines():
        m = re.match(r"\s*([0-9.]+)%\s+\[(.)\]\s+(.*)", line)
        if not m:
            continue
        pct, kind, sym = float(m.group(1)), m.group(2), m.group(3)
        if kind == "k":
            totals["kernel"] += pct
            continue
        for needle, owner in owners:
            if needle in sym:
                totals[owner] += pct
                break
        else:
            totals["other (libc, std, the handler)"] += pct
    return sorted(totals.items(), key=lambda kv: -kv[1])


def cpu_split_section(work, w):
    """Section 1's server CPU per request (user, system) and perf's top symbols."""
    try:
        rows = [l.split() for l in open(os.path.join(work, "cpu-split.txt")) if l.strip()]
    except OSError:
        return
    clk = os.sysconf("SC_CLK_TCK")
    per = {}
    for row in rows:
        if len(row) != 6:
            continue
        name, u0, s0, u1, s1, n = row[0], *map(int, row[1:])
        if n:
            per.setdefault(name, []).append(((u1 - u0) * 1e6 / clk / n, (s1 - s0) * 1e6 / clk / n))
    if not per:
        return
    w("Where the time goes: each server's CPU per request under the same wrk load (from")
    w("`/proc/PID/stat` around %d runs; medians), and, below, `perf record -g` of each." % len(per.get("bare", [])))
    w("")
    w("| server | user us/request | system us/request | total |")
    w("|---|---|---|---|")
    for name in ["bare", "stacked", "assembled"]:
        if name in per:
            u = statistics.median(x[0] for x in per[name])
            k = statistics.median(x[1] for x in per[name])
            w("| %s | %.2f | %.2f | %.2f |" % (name, u, k, u + k))
    w("")
    for name in ["bare", "stacked"]:
        perf_block(work, w, name, name + " under load")


def perf_block(work, w, name, label):
    """One `perf record -g` (bench/run.sh `profile`): shares by owner, then the top symbols."""
    try:
        dso = open(os.path.join(work, "perf-%s-dso.txt" % name)).read().strip("\n")
        sym = open(os.path.join(work, "perf-%s-sym.txt" % name)).read().strip("\n")
    except OSError:
        return
    if not dso:
        return
    shares = perf_shares(sym)
    w("`perf record -g` of %s, its samples by owner: %s." % (
        label, ", ".join("%s %.0f%%" % (k, v) for k, v in shares)))
    w("")
    w("<details><summary>by object, then the top symbols</summary>")
    w("")
    w("```")
    w(dso)
    w("")
    w("\n".join(sym.splitlines()[:25]))
    w("```")
    w("</details>")
    w("")

def ms(text):
    m = re.match(r"([\d.]+)(us|ms|s)", text)
    return float(m.group(1)) * UNITS[m.group(2)] if m else None


def parse(name, rnd, path):
    out = open(path).read()
    rec = {"name": name, "round": int(rnd)}
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    rec["rps"] = float(m.group(1)) if m else 0.0
    for pct in ("50", "99"):
        m = re.search(r"^\s+%s%%\s+(\S+)" % pct, out, re.M)
        rec["p%s_ms" % pct] = ms(m.group(1)) if m else None
    m = re.search(r"(\d+) requests in", out)
    rec["requests"] = int(m.group(1)) if m else 0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    rec["non2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"timeout (\d+)", out)
    rec["timeouts"] = int(m.group(1)) if m else 0
    print(json.dumps(rec))


def divan_median(text, name):
    """The median (ns) of the divan benchmark `name`, or None."""
    units = {"ns": 1.0, "µs": 1e3, "us": 1e3, "ms": 1e6, "s": 1e9}
    for line in text.splitlines():
        if name in line and "│" in line:
            cols = line.split("│")
            # The column holding the name (after the tree's own bars) also
            # holds the fastest time; the median is two columns on.
            i = next(k for k, c in enumerate(cols) if name in c)
            if len(cols) < i + 3:
                continue
            m = re.match(r"\s*([\d.]+)\s*(ns|µs|us|ms|s)\s*$", cols[i + 2])
            if m:
                return float(m.group(1)) * units[m.group(2)]
    return None


def cmd(args):
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=30).stdout.strip()
    except Exception:
        return "?"


def write(results, work, out, extra):
    runs = defaultdict(dict)
    for line in open(results):
        r = json.loads(line)
        runs[r["name"]][r["round"]] = r
    kv = dict(x.split("=", 1) for x in extra)
    rounds = sorted({rnd for v in runs.values() for rnd in v})

    def med(name, key="rps"):
        vals = [r[key] for r in runs.get(name, {}).values() if r.get(key) is not None]
        return statistics.median(vals) if vals else float("nan")

    def ratio(a, b, key="rps"):
        """Median over rounds of a/b, each round's pair measured back to back."""
        vals = []
        for rnd in rounds:
            x, y = runs.get(a, {}).get(rnd), runs.get(b, {}).get(rnd)
            if x and y and y.get(key):
                vals.append(x[key] / y[key])
        return statistics.median(vals) if vals else float("nan")

    def goal(ok):
        return "met" if ok else "**missed**"

    L = []
    w = L.append
    w("# Benchmarks")
    w("")
    w("Written by `bash bench/run.sh` (one command; %s s). Every comparison runs its" % kv.get("elapsed_s", "?"))
    w("sides alternately in this one invocation (%s rounds of %s s per side) and" % (kv["rounds"], kv["seconds"]))
    w("reports the **median ratio** of back-to-back pairs: absolute numbers drift on")
    w("this shared machine, ratios much less. Load: `wrk -t2 -c32` on the same 2 cores")
    w("as the servers, so every figure includes the load generator's own cost.")
    w("")
    w("## Machine and versions")
    w("")
    cpu = "?"
    try:
        cpu = [l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")][0]
    except Exception:
        pass
    mem = cmd(["sh", "-c", "free -h | awk '/Mem/ {print $2}'"])
    w("| what | value |")
    w("|---|---|")
    w("| CPU | %s, %s cores |" % (cpu, os.cpu_count()))
    w("| memory | %s |" % mem)
    w("| OS | %s |" % platform.platform())
    w("| rustc | %s |" % cmd(["rustc", "--version"]))
    w("| wrk | %s |" % cmd(["sh", "-c", "wrk -v 2>&1 | head -1"]))
    w("| PocketBase | %s |" % cmd(["sh", "-c", "bench/.tools/venv/bin/pocketbase --version"]))
    w("| json-server | %s |" % cmd(["sh", "-c", "cd bench/.tools/node && node -p \"require('json-server/package.json').version\""]))
    w("| Verdict commit | %s |" % cmd(["git", "rev-parse", "--short", "HEAD"]))
    w("")

    w("## 1. What the contract costs")
    w("")
    w("The same trivial handler (`GET /hello`, a small JSON body) served by bare axum and")
    w("behind the whole `verdict` stack (`bench/server`: request id, bearer auth, rate")
    w("limit, scopes, Accept, Content-Type, body limit, ETag, deadline, load shedding,")
    w("panic catching, normalizing).")
    w("")
    w("| side | req/s (median) | p50 ms | p99 ms |")
    w("|---|---|---|---|")
    for name, label in [("bare_ok", "bare axum, 200"), ("stack_ok", "full stack, 200"),
                        ("asm_ok", "hand-assembled stack (tower-http, tower_governor, problem_details), 200"),
                        ("stack_404", "full stack, 404 unknown path"), ("stack_401", "full stack, 401 no token"),
                        ("stack_429", "full stack, 429 rate limited")]:
        w("| %s | %.0f | %.3f | %.3f |" % (label, med(name), med(name, "p50_ms"), med(name, "p99_ms")))
    w("")
    r_ok = ratio("stack_ok", "bare_ok")
    w("| goal | measured (median ratio) | |")
    w("|---|---|---|")
    w("| full stack keeps >= 80%% of bare axum's throughput (200; issue 15, was 95%% in issue 2) | %.1f%% | %s |" % (r_ok * 100, goal(r_ok >= 0.80)))
    r_asm = ratio("stack_ok", "asm_ok")
    w("| full stack matches the hand-assembled stack's throughput (200), doing more | %.2f | %s |" % (r_asm, goal(r_asm >= 1.0)))
    for name, label in [("stack_404", "404"), ("stack_401", "401"), ("stack_429", "429")]:
        r = ratio(name, "stack_ok")
        w("| an error (%s) costs no more than a success: throughput ratio >= 1 | %.2f | %s |" % (label, r, goal(r >= 1.0)))
    w("")
    cpu_split_section(work, w)

    w("## 2. The service against what users pick instead")
    w("")
    w("`verdict serve` (embedded SQLite, `synchronous=FULL`: every acknowledged write is")
    w("fsynced before its 2xx, concurrent writes sharing one commit (group commit), with")
    w("a bearer token on every request), PocketBase 0.40.6")
    w("(embedded SQLite, public collection rules, `skipTotal=1` on pages) and json-server")
    w("0.17.4, each seeded with the same 1,000 records and driven by the same wrk script")
    w("(`bench/crud.lua`): GET one record, GET a page of 20, POST a record, PATCH a record,")
    w("and POST+DELETE pairs.")
    w("")
    w("| operation | Verdict req/s | PocketBase req/s | json-server req/s | Verdict / PocketBase | Verdict / json-server |")
    w("|---|---|---|---|---|---|")
    goals = []
    for op, label, kind in [("get_one", "GET one", "read"), ("get_page", "GET a page", "read"),
                            ("post", "POST", "write"), ("patch", "PATCH", "write"),
                            ("post_delete", "POST+DELETE", "write")]:
        v, p, j = med("verdict_" + op), med("pocketbase_" + op), med("jsonserver_" + op)
        rp, rj = ratio("verdict_" + op, "pocketbase_" + op), ratio("verdict_" + op, "jsonserver_" + op)
        w("| %s | %.0f | %.0f | %.0f | %.2fx | %.1fx |" % (label, v, p, j, rp, rj))
        goals.append((label, kind, rp, rj))
    w("")
    w("| goal | measured | |")
    w("|---|---|---|")
    for label, kind, rp, rj in goals:
        gp, gj = (3.0, 10.0) if kind == "read" else (2.0, 30.0)
        w("| %s: >= %.0fx PocketBase | %.2fx | %s |" % (label, gp, rp, goal(rp >= gp)))
        w("| %s: >= %.0fx json-server | %.1fx | %s |" % (label, gj, rj, goal(rj >= gj)))
    # Issue 15: a record read against bare axum's static JSON, measured
    # in the same round just before (section 1's figure is minutes apart).
    rb = ratio("verdict_get_one", "bare_static")
    w("| GET one (the whole stack, a token, SQLite, the record cache): >= 0.45x bare axum's static JSON (run in the same rounds) | %.2fx (%.0f against %.0f req/s) | %s |" % (
        rb, med("verdict_get_one"), med("bare_static"), goal(rb >= 0.45)))
    counters = {}
    try:
        for line in open(os.path.join(work, "verdict-metrics.txt")):
            parts = line.split()
            if len(parts) == 2 and parts[0].startswith("verdict_sqlite_"):
                counters[parts[0]] = float(parts[1])
    except Exception:
        pass
    commits, batched = counters.get("verdict_sqlite_commits_total"), counters.get("verdict_sqlite_batched_writes_total")
    if commits:
        w("")
        w("Group commit: Verdict's writer made %d commits (each one fsync) for %d writes over the whole" % (commits, batched))
        w("section, %.1f writes per commit (from its `/metrics`)." % (batched / commits))
    errors = {n: sum(r["non2xx"] for r in runs[n].values()) for n in runs if n.split("_")[0] in ("verdict", "pocketbase", "jsonserver")}
    bad = {n: c for n, c in errors.items() if c}
    w("")
    w("Non-2xx answers during these runs (a sanity check; should be none): %s." % (bad or "none"))
    w("")
    perf_block(work, w, "get_one", "`verdict serve` under the GET one load (goal 4)")

    w("## 3. Overload")
    w("")
    w("`verdict serve --max-in-flight 16`; every request holds its slot 20 ms")
    w("(`Fault-Injection: delay=20`), so the service carries 800 requests/s. 16")
    w("connections are the unloaded case; 64 offer 4x what it can carry.")
    w("")
    probe = {}
    try:
        probe = json.load(open(os.path.join(work, "probe.json")))
    except Exception:
        pass
    floor = {}
    try:
        floor = json.load(open(os.path.join(work, "probe-floor.json")))
    except Exception:
        pass
    loaded = list(runs.get("over_loaded", {}).values())
    shed_share = (sum(r["non2xx"] for r in loaded) / max(1, sum(r["requests"] for r in loaded))) if loaded else float("nan")
    timeouts = sum(r["timeouts"] for r in loaded)
    p99_ratio = ratio("over_loaded", "over_unloaded", "p99_ms")
    w("| measure | value |")
    w("|---|---|")
    w("| unloaded p99 (16 connections) | %.1f ms |" % med("over_unloaded", "p99_ms"))
    w("| overloaded p99, all answers (64 connections) | %.1f ms |" % med("over_loaded", "p99_ms"))
    w("| share of answers that were 503 + Retry-After (shed connections retry at once, so most answers are sheds) | %.0f%% |" % (shed_share * 100))
    w("| time to answer a shed request (median / p99, %s probes) | %s / %s ms |" % (
        probe.get("shed", 0), "%.3f" % probe["median_ms"] if "median_ms" in probe else "?",
        "%.3f" % probe["p99_ms"] if "p99_ms" in probe else "?"))
    w("| the floor: bare axum's static 503 + Retry-After under the same pinned load (median / p99, %s probes) | %s / %s ms |" % (
        floor.get("shed", 0), "%.3f" % floor["median_ms"] if "median_ms" in floor else "?",
        "%.3f" % floor["p99_ms"] if "p99_ms" in floor else "?"))
    w("| wrk timeouts | %d |" % timeouts)
    w("| resident memory before / after | %s / %s KiB |" % (kv.get("rss_overload_before_kb"), kv.get("rss_overload_after_kb")))
    w("")
    w("| goal | measured | |")
    w("|---|---|---|")
    w("| admitted p99 within 2x of unloaded | %.2fx (p99 of all answers: the admitted are the slow ones) | %s |" % (p99_ratio, goal(p99_ratio <= 2.0)))
    pm = probe.get("p99_ms")
    pinned = kv.get("pinned", "no") != "no"
    where = ("the server pinned to CPU 0 (`taskset -c 0`), wrk and the probe to CPU 1, the probe at `nice -n -10`"
             if pinned else "not pinned: server, load and probe on the same 2 cores")
    w("| every shed request answered 503 + Retry-After in < 1 ms | p99 %s ms (`verdict-bench-server probe`: a Rust client on one keep-alive connection; %s) | %s |" % (
        "%.3f" % pm if pm is not None else "?", where, goal(pm is not None and pm < 1.0)))
    fp = floor.get("p99_ms")
    if pm is not None and fp:
        w("| (against the floor) | the shed's p99 is %.1fx bare axum's static 503 | |" % (pm / fp))
    w("| no timeouts | %d | %s |" % (timeouts, goal(timeouts == 0)))
    try:
        grew = int(kv["rss_overload_after_kb"]) - int(kv["rss_overload_before_kb"])
        w("| memory flat | %+d KiB | %s |" % (grew, goal(grew < 20000)))
    except Exception:
        pass
    w("")
    perf_block(work, w, "shed", "the pinned server under the overload, nearly every answer a shed (goal 5)")

    w("## 4. Memory")
    w("")
    try:
        idle, full, held = int(kv["rss_idle_kb"]), int(kv["rss_10k_kb"]), int(kv["held"])
        w("| measure | resident memory |")
        w("|---|---|")
        w("| `verdict serve`, idle | %.1f MiB |" % (idle / 1024))
        w("| with %d open keep-alive connections | %.1f MiB (%.1f KiB a connection) |" % (held, full / 1024, (full - idle) / max(1, held)))
        w("| after the section 2 load | %.1f MiB |" % (int(kv["rss_after_peer_load_kb"]) / 1024))
    except Exception as e:
        w("(not measured: %s)" % e)
    w("")
    try:
        ours = (int(kv["rss_10k_kb"]) - int(kv["rss_idle_kb"])) / max(1, int(kv["held"]))
        b_idle, b_full, b_held = int(kv["bare_rss_idle_kb"]), int(kv["bare_rss_10k_kb"]), int(kv["bare_held"])
        bare = (b_full - b_idle) / max(1, b_held)
        w("Against bare axum (`verdict-bench-server bare`: the same allocator and runtime, one trivial route),")
        w("each holding its connections after one request, as above (issue 15 goal 7):")
        w("")
        w("| server | idle | with %d connections | a connection |" % b_held)
        w("|---|---|---|---|")
        w("| bare axum | %.1f MiB | %.1f MiB | %.1f KiB |" % (b_idle / 1024, b_full / 1024, bare))
        w("| `verdict serve` | %.1f MiB | %.1f MiB | %.1f KiB (%.2fx bare) |" % (
            int(kv["rss_idle_kb"]) / 1024, int(kv["rss_10k_kb"]) / 1024, ours, ours / max(0.01, bare)))
    except Exception as e:
        w("(bare axum not measured: %s)" % e)
    w("")

    w("## 5. The library's micro-benchmarks")
    w("")
    w("`cargo bench -p verdict` (divan): each body format, the full stack in process")
    w("against the bare handler (no socket), the rate-limit decision, the conditional check.")
    w("")
    try:
        text = open(os.path.join(work, "divan.txt")).read()
    except OSError:
        text = ""
    steps = ["1 always-on, no ETag", "2 + ETag", "3 + auth", "4 + rate limit", "5 + shedding", "6 + deadline (full)"]
    bare = divan_median(text, "bare_handler")
    full = divan_median(text, "full_stack_success")
    if bare is not None and full is not None:
        added = (full - bare) / 1000.0
        w("| goal (issue 15) | measured (divan medians) | |")
        w("|---|---|---|")
        w("| the full stack costs at most 2.0 µs more than the bare handler, in process | %.2f µs (%.2f against %.2f) | %s |" % (
            added, full / 1000.0, bare / 1000.0, goal(added <= 2.0)))
        w("")
    rows = [(st, divan_median(text, st)) for st in steps]
    if all(v is not None for _, v in rows) and bare is not None:
        w("Where it goes: the stack built up one feature at a time (`stack::cumulative`),")
        w("each step's median and what it adds to the step before (the first step")
        w("against the bare handler). Allocations per request are in the divan output below.")
        w("")
        w("| step | median µs | adds µs |")
        w("|---|---|---|")
        prev = bare
        for st, v in rows:
            w("| %s | %.2f | %+.2f |" % (st, v / 1000.0, (v - prev) / 1000.0))
            prev = v
        w("")
    # Instructions per request (callgrind on `alloc-sites --measure`).
    try:
        ins = dict(l.split() for l in open(os.path.join(work, "instructions.txt")) if l.strip())
        b, a, v = float(ins["bare"]), float(ins["assembled"]), float(ins["stacked"])
        w("Instructions per request in process (`alloc-sites SIDE --measure 2000` under callgrind,")
        w("which counts the same whatever else the machine is doing; the request built and")
        w("its body read included, as on every side):")
        w("")
        w("| side | instructions per request | beyond the bare handler |")
        w("|---|---|---|")
        w("| bare handler | %.0f | |" % b)
        w("| hand-assembled stack (tower-http, tower_governor, problem_details) | %.0f | %+.0f |" % (a, a - b))
        w("| the full `verdict` stack | %.0f | %+.0f (%.2fx the assembled stack's addition) |" % (v, v - b, (v - b) / max(1.0, a - b)))
        w("")
    except (OSError, KeyError, ValueError):
        pass
    # Where one request allocates (`alloc-sites`, run by section 5).
    try:
        bare_allocs = open(os.path.join(work, "allocs-bare.txt")).read().strip()
        try:
            bare_allocs += "; " + open(os.path.join(work, "allocs-assembled.txt")).read().strip()
        except OSError:
            pass
        stacked_allocs = open(os.path.join(work, "allocs-stacked.txt")).read().rstrip()
        first = stacked_allocs.splitlines()[0]
        w("Allocations for one `GET /hello` in process (`alloc-sites`, from `bench/server`):")
        w("%s; %s. Each of the full stack's, with the first frames that made it:" % (bare_allocs, first))
        w("")
        w("<details><summary>the full stack's allocation sites</summary>")
        w("")
        w("```")
        w("\n".join(stacked_allocs.splitlines()[1:]))
        w("```")
        w("</details>")
        w("")
    except (OSError, IndexError):
        pass
    perf_block(work, w, "inproc", "the full stack in process (`alloc-sites stacked --measure`: one thread, no socket; goal 1)")
    w("```")
    try:
        start = text.find("Timer precision")
        w(text[start:].rstrip() if start >= 0 else text.rstrip())
    except Exception:
        w("(no output)")
    w("```")
    w("")
    w("## 6. What the access log and compression cost")
    w("")
    w("Section 6 of the script: `verdict serve` on 1,000 seeded records; GET one")
    w("record (under 1 KiB, so never compressed) and GET a page of 100. The access")
    w("log writes one text line per request to a file (%s lines in this" % kv.get("access_lines", "?"))
    w("run); its \"off\" side is `RUST_LOG=info,verdict::access=off` on a second")
    w("instance over the same data. Compression is the same instance asked with")
    w("and without `Accept-Encoding`; a third instance with `--no-compression`")
    w("(asked for gzip, which it ignores) shows what the layer costs when it does")
    w("not compress. Ratios are medians of back-to-back pairs.")
    w("")
    w("| measure | GET one | GET a page of 100 |")
    w("|---|---|---|")
    w("| access log on / off (throughput) | %.2f | %.2f |" % (ratio("log_on_get_one", "log_off_get_one"), ratio("log_on_get_page", "log_off_get_page")))
    w("| compression on, not asked / `--no-compression` (throughput: the layer's own cost) | %.2f | %.2f |" % (ratio("log_on_get_one", "layer_off_get_one"), ratio("log_on_get_page", "layer_off_get_page")))
    w("| gzip / identity (throughput) | %.2f | %.2f |" % (ratio("gzip_get_one", "log_on_get_one"), ratio("gzip_get_page", "log_on_get_page")))
    w("| brotli / identity (throughput) | %.2f | %.2f |" % (ratio("br_get_one", "log_on_get_one"), ratio("br_get_page", "log_on_get_page")))
    w("| req/s: log on, log off, gzip, br | %.0f, %.0f, %.0f, %.0f | %.0f, %.0f, %.0f, %.0f |" % (
        med("log_on_get_one"), med("log_off_get_one"), med("gzip_get_one"), med("br_get_one"),
        med("log_on_get_page"), med("log_off_get_page"), med("gzip_get_page"), med("br_get_page")))
    try:
        plain, gz, br = int(kv["page_plain"]), int(kv["page_gzip"]), int(kv["page_br"])
        w("| bytes of the page: identity, gzip, br | | %d, %d (%.1f%%), %d (%.1f%%) |" % (
            plain, gz, 100.0 * gz / plain, br, 100.0 * br / plain))
    except Exception:
        pass
    w("")
    w("## 7. The gateway's overhead")
    w("")
    w("Section 7 of the script: the same upstream asked directly and through `verdict")
    w("proxy` (the library's whole stack, hop-by-hop hygiene, `Via`/`Forwarded`, the")
    w("request id passed on, an access line per request written to a file: %s" % kv.get("gw_lines", "?"))
    w("lines in this run), sides alternating. Goals (issue 14): under 10% throughput")
    w("lost, under 1 ms added p99, on a small JSON GET. Two upstreams: bare axum")
    w("(`GET /hello`), the worst case, since it costs next to nothing and everything")
    w("the gateway spends shows; and json-server (`GET /books/1`), an API written in")
    w("something else, the case the gateway is for. All processes share the same 2")
    w("cores: through the gateway, wrk, the gateway and the upstream split them.")
    w("")
    w("| measure | direct | through the gateway | ratio / added |")
    w("|---|---|---|---|")
    tj = ratio("gw_js_proxy_32", "gw_js_direct_32")
    w("| json-server: req/s, 32 connections | %.0f | %.0f | %.2f (%s) |" % (med("gw_js_direct_32"), med("gw_js_proxy_32"), tj, goal(tj >= 0.9)))
    addj = med("gw_js_proxy_32", "p99_ms") - med("gw_js_direct_32", "p99_ms")
    w("| json-server: p99 ms, 32 connections | %.3f | %.3f | %+.3f ms (%s) |" % (med("gw_js_direct_32", "p99_ms"), med("gw_js_proxy_32", "p99_ms"), addj, goal(addj < 1.0)))
    t32 = ratio("gw_proxy_32", "gw_direct_32")
    w("| bare axum: req/s, 32 connections | %.0f | %.0f | %.2f (%s) |" % (med("gw_direct_32"), med("gw_proxy_32"), t32, goal(t32 >= 0.9)))
    added32 = med("gw_proxy_32", "p99_ms") - med("gw_direct_32", "p99_ms")
    w("| bare axum: p99 ms, 32 connections | %.3f | %.3f | %+.3f ms |" % (med("gw_direct_32", "p99_ms"), med("gw_proxy_32", "p99_ms"), added32))
    t4 = ratio("gw_proxy_4", "gw_direct_4")
    w("| bare axum: req/s, 4 connections | %.0f | %.0f | %.2f |" % (med("gw_direct_4"), med("gw_proxy_4"), t4))
    added4 = med("gw_proxy_4", "p99_ms") - med("gw_direct_4", "p99_ms")
    w("| bare axum: p99 ms, 4 connections | %.3f | %.3f | %+.3f ms |" % (med("gw_direct_4", "p99_ms"), med("gw_proxy_4", "p99_ms"), added4))
    added1 = med("gw_proxy_1", "p99_ms") - med("gw_direct_1", "p99_ms")
    w("| bare axum: p50 ms, 1 connection | %.3f | %.3f | %+.3f ms |" % (med("gw_direct_1", "p50_ms"), med("gw_proxy_1", "p50_ms"), med("gw_proxy_1", "p50_ms") - med("gw_direct_1", "p50_ms")))
    w("| bare axum: p99 ms, 1 connection | %.3f | %.3f | %+.3f ms (%s) |" % (med("gw_direct_1", "p99_ms"), med("gw_proxy_1", "p99_ms"), added1, goal(added1 < 1.0)))
    try:
        tck = float(kv["clk_tck"])
        gw_us = float(kv["gw_cpu_ticks"]) / tck / float(kv["gw_requests"]) * 1e6
        up_us = float(kv["gw_upstream_cpu_ticks"]) / tck / float(kv["gw_requests"]) * 1e6
        direct_us = float(kv["direct_cpu_ticks"]) / tck / float(kv["direct_requests"]) * 1e6
        w("| bare axum: CPU per request (process time / requests), µs | upstream %.1f | gateway %.1f + upstream %.1f | gateway = %.1fx the upstream |" % (
            direct_us, gw_us, up_us, gw_us / up_us if up_us else float("nan")))
    except Exception:
        pass
    w("")
    w("What normalizing an error costs: `GET /nope` (the upstream's empty 404) through")
    w("the gateway with normalizing on (rewritten into a problem+json 404) against")
    w("`--normalize off` (passed as it is):")
    w("")
    w("| measure | normalize on | normalize off | ratio |")
    w("|---|---|---|---|")
    w("| req/s | %.0f | %.0f | %.2f |" % (med("gw_norm_on"), med("gw_norm_off"), ratio("gw_norm_on", "gw_norm_off")))
    w("| p99 ms | %.3f | %.3f | |" % (med("gw_norm_on", "p99_ms"), med("gw_norm_off", "p99_ms")))
    w("")
    w("## 8. PostgreSQL mode")
    w("")
    w("Section 8 of the script: `verdict serve --data postgres://...` (PostgreSQL on")
    w("127.0.0.1, a fresh database seeded with 1,000 records), one instance, and two")
    w("instances sharing that database with wrk's two threads split between them")
    w("(`crud.lua`'s `PORTS`: a round robin by connection); against SQLite mode and")
    w("PocketBase on fresh data of their own, in the same rounds. 32 connections.")
    w("Everything (wrk, the instances, PostgreSQL) shares the same 2 cores.")
    w("")
    w("| operation | PostgreSQL, 1 instance | PostgreSQL, 2 instances | SQLite | PocketBase | 2 / 1 instances | PostgreSQL (1) / SQLite | PostgreSQL (1) / PocketBase |")
    w("|---|---|---|---|---|---|---|---|")
    for op, label in [("get_one", "GET one"), ("get_page", "GET a page of 20"), ("post", "POST"), ("patch", "PATCH")]:
        w("| %s | %.0f | %.0f | %.0f | %.0f | %.2f | %.2f | %.2f |" % (
            label, med("pg8_pg1_" + op), med("pg8_pg2_" + op), med("pg8_sqlite_" + op), med("pg8_pocketbase_" + op),
            ratio("pg8_pg2_" + op, "pg8_pg1_" + op), ratio("pg8_pg1_" + op, "pg8_sqlite_" + op),
            ratio("pg8_pg1_" + op, "pg8_pocketbase_" + op)))
    bad = sum(r.get("non2xx", 0) for n, v in runs.items() if n.startswith("pg8_") for r in v.values())
    w("")
    w("Non-2xx answers across section 8: %d (a figure above 0 means some runs measured refusals)." % bad)
    w("")
    w("## Commands")
    w("")
    w("```sh")
    w("bash bench/run.sh          # ROUNDS=3 SECONDS_PER_RUN=3 by default")
    w("# each measurement: wrk -t2 -c32 -d${SECONDS_PER_RUN}s --latency URL [-H ...] [-s bench/crud.lua]")
    w("```")
    # The reasons behind missed goals, kept by hand beside the script.
    try:
        L.extend(["", open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "analysis.md")).read().rstrip()])
    except OSError:
        pass
    open(out, "w").write("\n".join(L) + "\n")


if __name__ == "__main__":
    if sys.argv[1] == "parse":
        parse(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        write(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:])
