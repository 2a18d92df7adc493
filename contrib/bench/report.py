#!/usr/bin/env python3
"""Turns one bench run into a Markdown table, a JSON file and PNG plots.

    report.py RUN_DIR RESULTS_DIR STAMP

RUN_DIR holds meta.json (written by run.sh), runs.jsonl (one line per run:
round, workload, system, status, reason, result file, kind) and the result
files (topicfs-perf --json output, or redis-benchmark --csv output).

Writes RESULTS_DIR/bench-STAMP.{md,json}, bench-STAMP-throughput.png and
bench-STAMP-latency.png, and copies them to latest.md, latest.json,
latest-throughput.png and latest-latency.png.

Medians are over rounds.  A ratio A/B is the median of the per-round ratios
A_r / B_r over the rounds where both ran (the runs of one round are close in
time, so pairing them cancels much of a shared machine's drift).

The `zstd` workload (contrib/bench/compression.sh, kind "compression" in
runs.jsonl) is topicfs alone, run once: its result.json goes into the JSON
file as "compression" and into the Markdown as a section of its own.

Exit status: 0 when every selected run succeeded, 1 when some failed (the
report is complete either way), 2 on an internal error.
"""

import csv
import json
import math
import os
import shutil
import statistics
import subprocess
import sys

SYSTEMS = ["topicfs", "passthrough_ll", "native", "redis"]
SYS_TITLE = {"topicfs": "topicfs", "passthrough_ll": "passthrough_ll",
             "native": "native", "redis": "Redis XADD"}

# Per workload: title, the metric compared, its unit, whether higher is
# better, which latency histogram to show, and what Redis runs for it.
WORKLOADS = [
    ("append-128k", dict(
        title="append 200 B records in 128 KiB writes",
        metric="mb_per_sec", unit="MB/s", higher=True,
        lat="write_latency_us", lat_title="write()",
        redis="8 clients, pipeline 64")),
    ("read-1g", dict(
        title="sequential read of the SIZE file, 1 MiB reads",
        metric="mb_per_sec", unit="MB/s", higher=True,
        lat="read_latency_us", lat_title="read()", redis=None)),
    ("append-1rec", dict(
        title="append one 200 B record per write()",
        metric="records_per_sec", unit="records/s", higher=True,
        lat="write_latency_us", lat_title="write()",
        redis="1 client, no pipeline")),
    ("append-4w", dict(
        title="4 concurrent writers, one record per write()",
        metric="records_per_sec", unit="records/s", higher=True,
        lat="write_latency_us", lat_title="write()",
        redis="4 clients, no pipeline")),
    ("fsync-1m", dict(
        title="128 KiB writes, fsync every 1 MiB",
        metric="mb_per_sec", unit="MB/s", higher=True,
        lat="fsync_latency_us", lat_title="fsync()", redis=None)),
    ("follow-1", dict(
        title="append-to-read latency, 1 follower, 1000 records/s",
        metric="call_p50", unit="us p50 from write() call", higher=False,
        lat="latency_us", lat_title="append-to-read from write() return",
        redis=None)),
    ("follow-100", dict(
        title="append-to-read latency, 100 followers, 1000 records/s",
        metric="call_p50", unit="us p50 from write() call", higher=False,
        lat="latency_us", lat_title="append-to-read from write() return",
        redis=None)),
]
WL = dict(WORKLOADS)
THROUGHPUT_WLS = ["append-128k", "read-1g", "append-1rec", "append-4w",
                  "fsync-1m"]

NA_REASON = {
    ("redis", "read-1g"): "Redis has no file to read",
    ("redis", "fsync-1m"): "AOF has everysec or always, not per-MiB fsync",
    ("redis", "follow-1"): "not measured (XREAD BLOCK needs a client)",
    ("redis", "follow-100"): "not measured (XREAD BLOCK needs a client)",
}

# Targets of issue 5, as (text, workload, numerator, denominator, minimum,
# metric override).  Ratios are of the workload's metric.
TARGETS = [
    ("appends in 128 KiB writes >= 0.9 x passthrough_ll", "append-128k",
     "topicfs", "passthrough_ll", 0.9, None),
    ("one-record writes >= 0.9 x passthrough_ll", "append-1rec",
     "topicfs", "passthrough_ll", 0.9, None),
    ("sequential reads >= 0.9 x passthrough_ll", "read-1g",
     "topicfs", "passthrough_ll", 0.9, None),
    ("fsync every 1 MiB >= 0.8 x native", "fsync-1m",
     "topicfs", "native", 0.8, None),
    ("200 B records in 128 KiB writes >= 5 x Redis XADD rate", "append-128k",
     "topicfs", "redis", 5.0, "records_per_sec"),
]

SPECTRUM_X_MAX = 100000.0	# where "max" is drawn on the percentile axis


def load_json(path):
    with open(path) as f:
        return json.load(f)


def redis_result(path):
    """redis-benchmark --csv: rps and per-request latencies in ms."""
    with open(path) as f:
        rows = list(csv.reader(f))
    head, row = rows[0], rows[1]
    d = dict(zip(head, row))
    rps = float(d["rps"])
    lat = {k: float(d[k + "_latency_ms"]) * 1000 for k in
           ("min", "p50", "p95", "p99", "max")}
    lat["count"] = None
    return {"records_per_sec": rps, "mb_per_sec": rps * 200 / 1e6,
            "request_latency_us": lat}


def run_metrics(run):
    """The numbers of one successful run, flattened for the report."""
    if run["kind"] == "compression":
        return load_json(run["result"])
    if run["kind"] == "redis-csv":
        r = redis_result(run["result"])
        r["complete"] = True
        return r
    j = load_json(run["result"])
    m = {k: j.get(k) for k in ("records", "bytes", "seconds",
                               "records_per_sec", "mb_per_sec")}
    m["complete"] = j.get("complete", True)
    for k in ("write_latency_us", "read_latency_us", "fsync_latency_us",
              "latency_us", "from_call_latency_us",
              "all_followers_latency_us"):
        if k in j and j[k].get("count"):
            m[k] = j[k]
    if "latency_us" in m:
        m["lat_p50"] = m["latency_us"]["p50"]
        m["lat_p99"] = m["latency_us"]["p99"]
    if "from_call_latency_us" in m:
        # From the write() call: never 0, unlike from its return (inotify
        # wakes readers inside write()), so it is what rows compare.
        m["call_p50"] = m["from_call_latency_us"]["p50"]
    if "wait" in j:
        m["wait"] = j["wait"]
    return m


def median(xs):
    return statistics.median(xs) if xs else None


def summarize(meta, runs):
    rounds = sorted({r["round"] for r in runs})
    selected = meta["systems"].split()
    out = {}
    for wl, spec in WORKLOADS:
        if wl not in meta["workloads"].split():
            continue
        size = meta.get("sizes", {}).get("append_128k", "1G")
        size = size.replace("G", " GiB").replace("M", " MiB")
        ws = {"title": spec["title"].replace("SIZE", size),
              "metric": spec["metric"],
              "unit": spec["unit"], "higher_is_better": spec["higher"],
              "command": meta["commands"].get(wl, ""), "systems": {},
              "ratios": {}}
        for sys_ in SYSTEMS:
            if (sys_, wl) in NA_REASON:
                if sys_ in selected:
                    ws["systems"][sys_] = {"status": "n/a",
                                           "reason": NA_REASON[(sys_, wl)]}
                continue
            mine = [r for r in runs if r["workload"] == wl and
                    r["system"] == sys_]
            if sys_ not in selected:
                continue
            if not mine:
                ws["systems"][sys_] = {"status": "not run", "reason": ""}
                continue
            ok = [r for r in mine if r["status"] == "ok"]
            bad = [r for r in mine if r["status"] != "ok"]
            s = {"status": "ok" if ok and not bad else
                 ("partial" if ok else "failed"),
                 "reasons": sorted({r["reason"] for r in bad}),
                 "rounds_ok": [r["round"] for r in ok]}
            per_round = {}
            for r in ok:
                per_round[r["round"]] = r["metrics"]
            vals = [m.get(spec["metric"]) for m in per_round.values()
                    if m.get(spec["metric"]) is not None]
            s["values"] = vals
            s["median"] = median(vals)
            s["min"] = min(vals) if vals else None
            s["max"] = max(vals) if vals else None
            for extra in ("records_per_sec", "mb_per_sec"):
                ev = [m[extra] for m in per_round.values()
                      if m.get(extra) is not None]
                s[extra] = median(ev)
            s["incomplete_rounds"] = [rd for rd, m in per_round.items()
                                      if not m.get("complete", True)]
            lk = "request_latency_us" if sys_ == "redis" else spec["lat"]
            hs = [m[lk] for m in per_round.values() if lk in m]
            if hs:
                lat = {}
                for p in ("p50", "p90", "p99", "p99_9", "max"):
                    pv = [h[p] for h in hs if h.get(p) is not None]
                    if pv:
                        lat[p] = median(pv)
                if hs[0].get("spectrum"):
                    spec_pts = []
                    for i, (pct, _) in enumerate(hs[0]["spectrum"]):
                        spec_pts.append([pct, median(
                            [h["spectrum"][i][1] for h in hs])])
                    lat["spectrum"] = spec_pts
                lat["what"] = ("per request (redis-benchmark)"
                               if sys_ == "redis" else spec["lat_title"])
                s["latency_us"] = lat
            if wl.startswith("follow"):
                for k in ("from_call_latency_us", "all_followers_latency_us"):
                    hs2 = [m[k] for m in per_round.values() if k in m]
                    if hs2:
                        s[k] = {p: median([h[p] for h in hs2])
                                for p in ("p50", "p99", "max")}
                        s[k]["spectrum"] = [
                            [pct, median([h["spectrum"][i][1]
                                          for h in hs2])]
                            for i, (pct, _) in
                            enumerate(hs2[0]["spectrum"])]
                waits = {m.get("wait") for m in per_round.values()}
                s["wait"] = ",".join(sorted(w for w in waits if w))
            s["per_round"] = {str(k): v.get(spec["metric"])
                              for k, v in per_round.items()}
            s["_rounds"] = per_round
            ws["systems"][sys_] = s
        out[wl] = ws
    # Paired ratios, for every ordered pair the table shows.
    pairs = [("topicfs", "passthrough_ll"), ("topicfs", "native"),
             ("topicfs", "redis"), ("passthrough_ll", "native")]
    for wl, ws in out.items():
        metric = ws["metric"]
        for a, b in pairs:
            ratio = paired_ratio(ws, a, b, metric)
            if ratio:
                ws["ratios"][f"{a}/{b}"] = ratio
    targets = []
    for text, wl, a, b, minimum, metric in TARGETS:
        t = {"target": text, "workload": wl, "ratio": f"{a}/{b}",
             "minimum": minimum, "value": None, "met": None, "note": ""}
        ws = out.get(wl)
        if ws is None:
            t["note"] = "workload not run"
        else:
            r = paired_ratio(ws, a, b, metric or ws["metric"])
            if r:
                t["value"] = r["median"]
                t["met"] = r["median"] >= minimum
            else:
                why = []
                for s in (a, b):
                    st = ws["systems"].get(s)
                    if st is None or st["status"] == "not run":
                        why.append(f"{s} not run")
                    elif st["status"] == "failed":
                        why.append(f"{s} failed")
                t["note"] = "pending: " + ", ".join(why) if why else \
                    "no round with both"
        targets.append(t)
    for ws in out.values():
        for s in ws["systems"].values():
            s.pop("_rounds", None)
    return out, targets, rounds


def paired_ratio(ws, a, b, metric):
    sa, sb = ws["systems"].get(a), ws["systems"].get(b)
    if not sa or not sb or "_rounds" not in sa or "_rounds" not in sb:
        return None
    per = []
    for rd, ma in sa["_rounds"].items():
        mb = sb["_rounds"].get(rd)
        if mb is None:
            continue
        va, vb = ma.get(metric), mb.get(metric)
        if va is None or vb is None or vb == 0:
            continue
        per.append(va / vb)
    if not per:
        return None
    return {"median": median(per), "rounds": per}


# ---- Markdown -----------------------------------------------------------------

def fmt(v, unit):
    if v is None:
        return "—"
    if unit.startswith("us"):
        return f"{v:,.1f}" if v < 100 else f"{v:,.0f}"
    if v >= 1000:
        return f"{v:,.0f}"
    if v >= 10:
        return f"{v:,.1f}"
    return f"{v:,.2f}"


def note_ref(notes, text):
    """The footnote number for text, adding it once."""
    if text not in notes:
        notes.append(text)
    return f"[^{notes.index(text) + 1}]"


def cell(ws, sys_, notes):
    s = ws["systems"].get(sys_)
    if s is None:
        return "—"
    if s["status"] == "n/a":
        return "n/a"
    if s["status"] == "not run":
        return "not run"
    if s["status"] == "failed":
        return "**FAILED**" + note_ref(
            notes, f"{SYS_TITLE[sys_]}: " + "; ".join(s["reasons"]))
    unit = ws["unit"]
    text = fmt(s["median"], unit)
    if len(s["values"]) > 1:
        text += f" ({fmt(s['min'], unit)}–{fmt(s['max'], unit)})"
    if s["status"] == "partial":
        text += " " + note_ref(
            notes, f"{SYS_TITLE[sys_]}, {ws['title']}: failed in some "
            "rounds: " + "; ".join(s["reasons"]))
    if s.get("incomplete_rounds"):
        text += " " + note_ref(
            notes, f"{SYS_TITLE[sys_]}, {ws['title']}: stopped at the "
            f"time cap in round(s) {s['incomplete_rounds']}; the rate is "
            "over what it wrote")
    return text


def ratio_cell(ws, key):
    r = ws["ratios"].get(key)
    if not r:
        return "—"
    return f"{r['median']:.2f}"


def lat_cell(ws, sys_):
    s = ws["systems"].get(sys_)
    if not s or "latency_us" not in s:
        if s and s["status"] == "n/a":
            return "n/a"
        if s and s["status"] == "failed":
            return "FAILED"
        return "—"
    lat = s["latency_us"]
    parts = [fmt(lat.get(p), "us") for p in ("p50", "p99")]
    text = " / ".join(parts)
    if "p99_9" in lat:
        text += f" / {fmt(lat['p99_9'], 'us')}"
    return text


def markdown(meta, summary, targets, rounds, png_tp, png_lat, comp=None):
    notes = []
    L = []
    quick = " BENCH_QUICK=1" if meta["quick"] else ""
    L.append(f"# topicfs benchmark, {meta['date_utc']} UTC")
    L.append("")
    if not summary:
        # Only the zstd workload ran.
        L.append(f"`{meta.get('command', 'make bench')}`: "
                 f"{meta['seconds']} s in all.  Host: Linux "
                 f"{meta['kernel']}, {meta['cpus']} CPUs "
                 f"({meta['cpu_model']}), {meta['mem_gib']} GiB, "
                 f"{meta['fs']}.")
        if comp is not None:
            L += compression_markdown(meta, comp)
        return "\n".join(L) + "\n"
    L.append(f"`make bench{quick}`: {meta['rounds_done']} paired round(s), "
             f"{meta['seconds']} s in all.  Host: Linux {meta['kernel']}, "
             f"{meta['cpus']} CPUs ({meta['cpu_model']}), "
             f"{meta['mem_gib']} GiB, {meta['fs']}; libfuse "
             f"{meta['libfuse']}, Redis {meta['redis']}.  Load average "
             f"before the run {meta['loadavg_before']} (above about 0.5 "
             "means other work shared the machine), after "
             f"{meta['loadavg_after']} (includes the bench's own "
             "threads).")
    if meta.get("stop_note"):
        L.append("")
        L.append(f"**{meta['stop_note']}.**")
    if meta.get("topicfs_status", "ok") != "ok" and \
            "topicfs" in meta["systems"].split():
        L.append("")
        L.append(f"**topicfs leg FAILED: {meta['topicfs_status']}.**")
    L.append("")
    L.append("Median over rounds, with the range in brackets.  Ratios are "
             "medians of per-round ratios; for latency rows lower is "
             "better, so a ratio below 1 favours the first system.")
    L.append("")
    hdr = ["workload", "unit", "topicfs", "passthrough_ll", "native",
           "Redis XADD", "topicfs ÷ passthrough_ll", "topicfs ÷ native",
           "topicfs ÷ Redis", "passthrough_ll ÷ native"]
    L.append("| " + " | ".join(hdr) + " |")
    L.append("|" + "---|" * len(hdr))
    for wl, ws in summary.items():
        redis_note = WL[wl]["redis"]
        rc = cell(ws, "redis", notes)
        if redis_note and rc not in ("n/a", "—", "not run"):
            rc += f" ({redis_note})"
        unit = ws["unit"]
        row = [f"{wl}: {ws['title']}", unit, cell(ws, "topicfs", notes),
               cell(ws, "passthrough_ll", notes), cell(ws, "native", notes),
               rc, ratio_cell(ws, "topicfs/passthrough_ll"),
               ratio_cell(ws, "topicfs/native"),
               ratio_cell(ws, "topicfs/redis"),
               ratio_cell(ws, "passthrough_ll/native")]
        L.append("| " + " | ".join(row) + " |")
    L.append("")
    L.append("Latency in microseconds, p50 / p99 / p99.9 (median over "
             "rounds of each run's percentile; Redis: per request as "
             "redis-benchmark reports it, p50 / p99):")
    L.append("")
    hdr = ["workload", "latency of", "topicfs", "passthrough_ll", "native",
           "Redis XADD"]
    L.append("| " + " | ".join(hdr) + " |")
    L.append("|" + "---|" * len(hdr))
    for wl, ws in summary.items():
        row = [wl, WL[wl]["lat_title"]] + [lat_cell(ws, s) for s in
                                           SYSTEMS]
        L.append("| " + " | ".join(row) + " |")
    fl = [(wl, ws) for wl, ws in summary.items() if wl.startswith("follow")]
    if fl:
        L.append("")
        L.append("Follow legs: a producer appends 1000 records/s, one per "
                 "write(); topicfs followers block in read() on "
                 "`TOPIC/.follow/0`; native and passthrough_ll followers "
                 "read `TOPIC/0` and wait with inotify (which fires for "
                 "writes made through the same mount).  The main table "
                 "gives the time from the producer's write() call to the "
                 "follower's read() returning; the latency table above "
                 "gives it from write() returning, which is 0 whenever "
                 "the reader was woken before the writer (inotify wakes "
                 "readers inside write()).  p50 / p99 µs:")
        L.append("")
        L.append("| workload | system | wait | from write() call | "
                 "from write() return | until all followers had it |")
        L.append("|---|---|---|---|---|---|")
        for wl, ws in fl:
            for s in SYSTEMS:
                st = ws["systems"].get(s)
                if not st or "from_call_latency_us" not in st:
                    continue
                fc = st["from_call_latency_us"]
                fr = st.get("latency_us", {})
                al = st.get("all_followers_latency_us", {})
                L.append(f"| {wl} | {s} | {st.get('wait', '')} | "
                         f"{fmt(fc.get('p50'), 'us')} / "
                         f"{fmt(fc.get('p99'), 'us')} | "
                         f"{fmt(fr.get('p50'), 'us')} / "
                         f"{fmt(fr.get('p99'), 'us')} | "
                         f"{fmt(al.get('p50'), 'us')} / "
                         f"{fmt(al.get('p99'), 'us')} |")
    L.append("")
    L.append("Targets of issue 5:")
    L.append("")
    L.append("| target | ratio | reached | met |")
    L.append("|---|---|---|---|")
    for t in targets:
        val = f"{t['value']:.3f}" if t["value"] is not None else "—"
        met = {True: "yes", False: "**no**", None: t["note"] or "—"}[
            t["met"]]
        L.append(f"| {t['target']} | {t['ratio']} | {val} | {met} |")
    L.append("")
    L.append(f"![throughput]({png_tp})")
    L.append("")
    L.append(f"![latency]({png_lat})")
    L.append("")
    L.append("Commands (FILE is `TOPIC/0` on each system):")
    L.append("")
    for wl in summary:
        L.append(f"* {wl}: `{meta['commands'].get(wl, '')}`")
    L.append(f"* passthrough_ll: `passthrough_ll "
             f"{meta['passthrough_ll_options']} MNT`")
    L.append(f"* topicfs: `topicfs -f {meta['topicfs_args']} DATA MNT`"
             .replace("  ", " ") + f" ({meta.get('topicfs_build', '')})")
    L.append("* Redis: `redis-server --appendonly yes --appendfsync "
             "everysec --save ''`, a fresh server and folder per run")
    if comp is not None:
        L += compression_markdown(meta, comp)
    if notes:
        L.append("")
        for i, n in enumerate(notes, 1):
            L.append(f"[^{i}]: {n}")
    return "\n".join(L) + "\n"


# ---- the zstd workload --------------------------------------------------------

def compression_doc(runs):
    """The "compression" field: compression.sh's result, or why there is
    none; None when the workload was not run."""
    zr = [r for r in runs if r["workload"] == "zstd"]
    if not zr:
        return None
    r = zr[-1]
    if r["status"] == "ok":
        return r["metrics"]
    doc = {}
    try:
        doc = load_json(r["result"])	# what it measured before failing
    except (OSError, ValueError):
        pass
    doc["status"] = "failed"
    doc["reason"] = r["reason"]
    return doc


def mib(n):
    return f"{n / 1048576:,.0f} MiB" if n < 1000 << 20 else \
        f"{n / (1 << 30):,.2f} GiB"


def compression_markdown(meta, c):
    L = ["", "## Compressed segments (zstd)", ""]
    if c.get("status") != "ok":
        L.append(f"**zstd FAILED: {c.get('reason', '')}.**  Log: "
                 "`bench/work/run-STAMP/zstd.log`.")
        if "ratio" not in c:
            return L
        L.append("")
    g = c.get("generator") or {}
    z = c.get("z_config") or {}
    quick = " BENCH_QUICK=1" if c.get("quick") else ""
    alone = f"make bench{quick} BENCH_WORKLOADS=zstd"
    run = meta.get("command", "make bench")
    wsize = str(g.get("write_size", "")).replace("K", " KiB")
    L.append(
        f"From `{run}`"
        + ("" if run.replace('"', "") == alone else
           f" (the workload alone: `{alone}`)")
        + f", contrib/bench/compression.sh, {c.get('seconds')} s: "
        f"{mib(g.get('bytes', 0))} "
        f"({g.get('bytes', 0):,} bytes, {g.get('lines', 0):,} lines of "
        f"{g.get('bytes', 0) / max(g.get('lines', 1), 1):.0f} bytes) of "
        "web-log lines from `contrib/bench/weblog.c` (seed "
        f"{g.get('seed')}) appended in {wsize} writes to two "
        "topics of one topicfs mount: `raw`, and `z` with "
        f"`compression={z.get('compression')}` (level {z.get('level')}, "
        f"frame {z.get('frame_bytes', 0) // 1024} KiB: the defaults); "
        f"segment.bytes {z.get('segment_bytes', 0) // 1048576} MiB; then "
        "`segment.ms=1s` sealed the active segments, so every byte of `z` "
        "is compressed.  Both files read back through the mount match the "
        "generator's checksum"
        + (" ({:,} bytes, sum {}).".format(
            int(c["verify"]["expected"].split()[0]),
            c["verify"]["expected"].split()[1]) if c.get("verify") else "."))
    L.append("")
    r = c.get("ratio")
    rd = c.get("reads", {})
    if r:
        L.append("| | raw | zstd | zstd ÷ raw |")
        L.append("|---|---|---|---|")
        L.append(f"| segment files, bytes (status `data_bytes`) | "
                 f"{r['logical_bytes']:,} | {r['data_bytes']:,} | ratio "
                 f"**{r['status_ratio']:.2f}** (`compression_ratio`) |")
        L.append(f"| on disk with indexes, bytes (`du`) | {r['du_raw']:,} | "
                 f"{r['du_z']:,} | ratio {r['du_ratio']:.2f} |")
        for sz, what in (("1M", "1 MiB"), ("64K", "64 KiB")):
            v = rd.get(sz)
            if not v:
                continue
            L.append(
                f"| sequential read, {what} reads, MB/s | "
                f"{fmt(v['raw']['median'], 'MB/s')} "
                f"({fmt(v['raw']['min'], '')}–{fmt(v['raw']['max'], '')}) | "
                f"{fmt(v['z']['median'], 'MB/s')} "
                f"({fmt(v['z']['min'], '')}–{fmt(v['z']['max'], '')}) | "
                f"{v['z_over_raw']['median']:.2f} |")
        L.append("")
    if rd:
        v1 = rd.get("1M") or next(iter(rd.values()))
        L.append(
            f"Reads: median over {v1['rounds']} paired rounds (raw and z one "
            "after the other, the order swapped each round) with the range; "
            "the ratio is the median of the per-round ratios.  "
            "`topicfs-perf consume -r SIZE MNT/TOPIC/0`.  **Warm cache**: "
            "the page cache holds the segment files, for `z` the compressed "
            "bytes, so no read touches the disk; the frame cache "
            "(`compression.cache.bytes`, 64 MiB by default) is smaller than "
            "the file, so every "
            "read of `z` decompresses each frame once: frame-cache misses "
            "and hits per pass: " + "; ".join(
                f"{sz} reads {v['z_cache_misses']:,} misses, "
                f"{v['z_cache_hits']:,} hits" for sz, v in rd.items())
            + (f" ({r['frames']:,} frames)." if r else "."))
        L.append("")
    cp = c.get("compaction")
    if cp and r:
        wall = ""
        if cp.get("wall_mb_per_sec"):
            wall = (f" and {cp['wall_seconds']:.2f} s of wall time writing "
                    f"the .zst files ({cp['wall_mb_per_sec']:,.0f} MB/s; "
                    "each file from its birth to its last write, so the "
                    "fsync and rename are left out)")
        L.append(
            f"Compaction: {cp['segments']} segments, "
            f"{cp['bytes'] / 1e6:,.0f} MB of input, took "
            f"{cp['cpu_seconds']:.2f} s of the compactor thread's CPU "
            f"(**{cp['mb_per_cpu_second']:,.0f} MB/s** per CPU second)"
            f"{wall}.  {cp.get('during_write_segments', 0)} segments were "
            "compressed while `z` was still being written; the last was "
            f"done {cp.get('done_after_write_seconds', 0):.1f} s after the "
            "last write (a segment waits for the checkpoint, `flush.ms`, "
            "and the next check, 200 ms here).  Frames hold whole batches "
            "and close at the first batch boundary at or past the frame "
            f"size: {r['frames']:,} frames of "
            f"{r['avg_frame_bytes'] / 1024:.0f} KiB on average.")
        L.append("")
    v = c.get("variants")
    if v and v.get("rows"):
        L.append(f"Levels and frame sizes on the first "
                 f"{mib(v['rows'][0]['bytes'])} of the same lines "
                 "(segment.bytes "
                 f"{v['segment_bytes_setting'].replace('MiB', ' MiB')}), "
                 "one topic each, made, "
                 "filled, compressed, read three times and removed in turn:")
        L.append("")
        L.append("| level | frame setting | frames on average | ratio | "
                 "compaction MB/s per CPU second | compaction MB/s, wall | "
                 "read MB/s, 1 MiB reads |")
        L.append("|---|---|---|---|---|---|---|")
        for row in v["rows"]:
            L.append(f"| {row['level']} | {row['frame_setting'] // 1024} KiB"
                     f" | {row['avg_frame_bytes'] / 1024:,.0f} KiB | "
                     f"{row['ratio']:.2f} | "
                     f"{fmt(row['mb_per_cpu_second'], 'MB/s')} | "
                     f"{fmt(row.get('wall_mb_per_sec'), 'MB/s')} | "
                     f"{fmt(row['read_mb_per_sec'], 'MB/s')} |")
        L.append("")
    notes = []
    if c.get("daemon_warning_count"):
        notes.append(f"the daemon logged {c['daemon_warning_count']} "
                     "warning(s) or error(s), first: "
                     f"`{c['daemon_warnings'][0]}`")
    if c.get("topicfs_exit") not in ("0", "", None):
        notes.append(f"the daemon exited with status {c['topicfs_exit']}")
    if notes:
        L.append("**Note:** " + "; ".join(notes) + ".")
        L.append("")
    L.append(f"topicfs: `{c.get('topicfs_command')}` "
             f"({c.get('topicfs_build', '')}); load average before "
             f"{c.get('loadavg_before')}, after {c.get('loadavg_after')}.")
    return L


# ---- plots ----------------------------------------------------------------------

def num(v):
    return "NaN" if v is None else f"{v:.6g}"


def spectrum_x(pct):
    return SPECTRUM_X_MAX if pct >= 100 else 100.0 / (100.0 - pct)


def write_plot_data(work, summary):
    tp = os.path.join(work, "throughput.dat")
    with open(tp, "w") as f:
        f.write("# workload " + " ".join(f"{s}_med {s}_lo {s}_hi"
                                         for s in SYSTEMS) + "\n")
        for wl in THROUGHPUT_WLS:
            ws = summary.get(wl)
            if not ws:
                continue
            cols = [f'"{wl}"']
            for s in SYSTEMS:
                st = ws["systems"].get(s, {})
                mb = [m for m in (st.get("values") or [])]
                if ws["metric"] == "records_per_sec" and mb:
                    mb = [v * 200 / 1e6 for v in mb]
                if mb:
                    cols += [num(statistics.median(mb)), num(min(mb)),
                             num(max(mb))]
                else:
                    cols += ["NaN"] * 3
            f.write(" ".join(cols) + "\n")
    specs = {}
    for name, wls in (("write", ["append-1rec"]),
                      ("follow", ["follow-1", "follow-100"])):
        path = os.path.join(work, f"spectrum-{name}.dat")
        titles = []
        measured = False
        with open(path, "w") as f:
            for wl in wls:
                ws = summary.get(wl)
                for s in SYSTEMS:
                    if s == "redis":
                        continue
                    st = (ws or {}).get("systems", {}).get(s, {})
                    key = "from_call_latency_us" if name == "follow" \
                        else "latency_us"
                    sp = st.get(key, {}).get("spectrum")
                    f.write(f"# {wl} {s}\n")
                    if sp:
                        measured = True
                        for pct, v in sp:
                            # A log axis cannot show 0: draw it at 0.1 us.
                            f.write(f"{spectrum_x(pct):.6g} "
                                    f"{max(v, 0.1):.6g}\n")
                    else:
                        f.write("NaN NaN\n")
                    f.write("\n\n")
                    label = s if len(wls) == 1 else \
                        f"{s}, {wl.split('-')[1]} follower" + \
                        ("s" if wl != "follow-1" else "")
                    titles.append(label)
        # No titles: latency.gp draws the panel as not measured.
        specs[name] = (path, titles if measured else [])
    return tp, specs


def y_range(dat):
    """A log-axis range holding every bar and error bar, in decades."""
    vals = []
    with open(dat) as f:
        for line in f:
            if line.startswith("#"):
                continue
            for w in line.split()[1:]:
                v = float(w)
                if v == v and v > 0:
                    vals.append(v)
    if not vals:
        return 1.0, 10000.0
    lo = 10 ** math.floor(math.log10(min(vals)))
    hi = 10 ** math.ceil(math.log10(max(vals) * 1.5))
    return lo, hi


def gp_words(words):
    """A gnuplot word list: word() and words() honour double quotes."""
    return " ".join(f'"{w}"' for w in words)


def gnuplot(script, args):
    cmd = ["gnuplot", "-e", "; ".join(f"{k}='{v}'" if isinstance(v, str)
                                      else f"{k}={v}"
                                      for k, v in args.items()),
           script]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        print(f"report: gnuplot {os.path.basename(script)} failed:\n"
              f"{r.stderr}", file=sys.stderr)
        return False
    return True


def compact_run(r, work):
    """A run for the JSON file: its figures without percentile spectra
    (the summary keeps those), and paths relative to the run folder."""
    out = {k: v for k, v in r.items() if k not in ("result", "metrics")}
    out["command"] = out.get("command", "").replace(work + "/", "")
    m = r.get("metrics")
    if m and r["kind"] == "compression":
        pass		# the whole result is the document's "compression"
    elif m:
        keep = ("p50", "p99", "p99_9", "max")
        out["metrics"] = {k: ({kk: vv for kk, vv in v.items()
                               if kk in keep}
                              if isinstance(v, dict) else v)
                          for k, v in m.items()}
    return out


def main():
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    work, results, stamp = sys.argv[1:]
    here = os.path.dirname(os.path.abspath(__file__))
    meta = load_json(os.path.join(work, "meta.json"))
    runs = []
    with open(os.path.join(work, "runs.jsonl")) as f:
        for line in f:
            if line.strip():
                runs.append(json.loads(line))
    for r in runs:
        if r["status"] == "ok":
            try:
                r["metrics"] = run_metrics(r)
            except (OSError, ValueError, KeyError, IndexError) as e:
                r["status"] = "failed"
                r["reason"] = f"unreadable result {r['result']}: {e}"
    summary, targets, rounds = summarize(meta, runs)

    comp = compression_doc(runs)
    base = os.path.join(results, f"bench-{stamp}")
    png_tp, png_lat = base + "-throughput.png", base + "-latency.png"
    tp, specs = write_plot_data(work, summary)
    title = (f"topicfs bench {meta['date_utc']} UTC, "
             f"{meta['rounds_done']} rounds, median (min-max)")
    missing = [s for s in meta["systems"].split()
               if not any(r["system"] == s and r["status"] == "ok"
                          for r in runs)]
    if missing:
        title += "; no data: " + ", ".join(missing)
    ylo, yhi = y_range(tp)
    ok_tp = ok_lat = True
    if summary:			# no plots when only zstd ran
        ok_tp = gnuplot(os.path.join(here, "throughput.gp"),
                        {"dat": tp, "out": png_tp, "ttl": title,
                         "titles": gp_words(SYS_TITLE[s] for s in SYSTEMS),
                         "nsys": len(SYSTEMS), "ylo": ylo, "yhi": yhi})
        ok_lat = gnuplot(os.path.join(here, "latency.gp"),
                         {"dat1": specs["write"][0],
                          "titles1": gp_words(specs["write"][1]),
                          "dat2": specs["follow"][0],
                          "titles2": gp_words(specs["follow"][1]),
                          "out": png_lat, "ttl": title})

    md = markdown(meta, summary, targets, rounds, "latest-throughput.png",
                  "latest-latency.png", comp)
    doc = {"meta": meta, "summary": summary, "targets": targets,
           "runs": [compact_run(r, os.path.abspath(work)) for r in runs]}
    if comp is not None:
        doc["compression"] = comp
    with open(base + ".json", "w") as f:
        json.dump(doc, f, separators=(",", ":"))
        f.write("\n")
    with open(base + ".md", "w") as f:
        f.write(md.replace("latest-throughput.png",
                           os.path.basename(png_tp))
                  .replace("latest-latency.png", os.path.basename(png_lat)))
    for src, dst in ((base + ".json", "latest.json"),
                     (base + ".md", None),
                     (png_tp, "latest-throughput.png"),
                     (png_lat, "latest-latency.png")):
        if dst and os.path.exists(src):
            shutil.copyfile(src, os.path.join(results, dst))
    with open(os.path.join(results, "latest.md"), "w") as f:
        f.write(md)
    print(md)
    failed = [r for r in runs if r["status"] != "ok"]
    if not (ok_tp and ok_lat):
        return 2
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
