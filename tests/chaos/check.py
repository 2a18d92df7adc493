#!/usr/bin/env python3
"""The chaos suite's checker: what the writers were told, what the readers
saw and what every node holds at the end, counted as Jepsen's queue and
Kafka workloads count them.

    check.py RUN_DIR [--seed N] [--duration S] [--json OUT] [--md OUT]

RUN_DIR holds (tests/e2e/chaos.bats writes them):

  acks/w<ID>.ack        each writer's log of every write() outcome
                        (tests/tools/writer -a): "ok FIRST LAST" once
                        write() returned success, "err FIRST LAST ENAME"
                        once it failed (those records may or may not be
                        committed)
  final/n<I>            node I's copy of the partition at the end, after
                        the faults were healed and the replicas converged
  readers/r<I>.<G>      what a reader streaming .follow on node I (its
                        G-th life) printed, in order
  events.log            "<ms> start <kind> <detail>", "<ms> end <kind>",
                        and "<ms> anomaly <name> <detail>" for what the
                        harness itself saw (a node that would not start)

Anomalies, each with the ids and offsets involved:

  lost          an acknowledged record missing from the final log
  duplicated    a record (writer, seq) in the final log more than once
  reordered     a writer's records out of sequence order in the final log
  diverged      a node's final copy that is not the same bytes as the
                reference (the longest copy): committed prefixes differ
  reader        a reader that saw bytes the final log does not hold at
                that offset (data later absent, or offsets going back)
  torn          a line of the final log that is not a whole record
  restart       a node that could not start again (from events.log)

Exit status 0 when every count is 0, 1 when any is not, 2 on bad input.
"""
import argparse
import json
import os
import re
import sys

REC = re.compile(rb"^R (\d+) (\d+) (\d+) ([0-9a-f]{8}) ([A-Za-z0-9+/=]*)$")
KINDS = ["lost", "duplicated", "reordered", "diverged", "reader", "torn",
         "restart"]
EXAMPLES = 10


def parse_acks(d):
    """{writer: (acked seqs, maybe seqs)}, acknowledged write() calls,
    failed write() calls."""
    out, acked_writes, failed_writes = {}, 0, 0
    adir = os.path.join(d, "acks")
    for name in sorted(os.listdir(adir)) if os.path.isdir(adir) else []:
        m = re.match(r"^w(\d+)\.ack$", name)
        if not m:
            continue
        wid = int(m.group(1))
        ok, maybe = [], set()
        with open(os.path.join(adir, name), "rb") as f:
            for line in f:
                p = line.split()
                if len(p) < 3 or p[0] not in (b"ok", b"err"):
                    continue  # a line cut by a kill: no outcome known
                first, last = int(p[1]), int(p[2])
                if p[0] == b"ok":
                    acked_writes += 1
                    ok.extend(range(first, last + 1))
                else:
                    failed_writes += 1
                    maybe.update(range(first, last + 1))
        out[wid] = (ok, maybe)
    return out, acked_writes, failed_writes


def parse_log(data):
    """[(offset, writer, seq)] of the whole records, and the torn lines."""
    recs, torn, off = [], [], 0
    for line in data.split(b"\n")[:-1] if data.endswith(b"\n") else \
            data.split(b"\n"):
        m = REC.match(line)
        if m and int(m.group(3)) == len(line) + 1:
            recs.append((off, int(m.group(1)), int(m.group(2))))
        else:
            torn.append({"offset": off, "line": line[:80].decode("latin-1")})
        off += len(line) + 1
    return recs, torn


def check(d):
    anomalies = {k: [] for k in KINDS}
    acks, acked_writes, failed_writes = parse_acks(d)

    # The final copies: the longest is the reference; every other must be
    # the same bytes (the run waits for the replicas to converge first).
    fdir = os.path.join(d, "final")
    finals = {}
    for name in sorted(os.listdir(fdir)) if os.path.isdir(fdir) else []:
        with open(os.path.join(fdir, name), "rb") as f:
            finals[name] = f.read()
    if not finals:
        raise ValueError("no final copies in %s" % fdir)
    ref_name = max(sorted(finals), key=lambda n: len(finals[n]))
    ref = finals[ref_name]
    for name, data in sorted(finals.items()):
        if data == ref:
            continue
        at = next((i for i in range(min(len(data), len(ref)))
                   if data[i] != ref[i]), min(len(data), len(ref)))
        anomalies["diverged"].append({
            "node": name, "reference": ref_name, "size": len(data),
            "reference_size": len(ref), "first_difference": at})

    recs, torn = parse_log(ref)
    anomalies["torn"] = torn
    seen = {}
    for off, wid, seq in recs:
        seen.setdefault((wid, seq), []).append(off)
    for (wid, seq), offs in sorted(seen.items()):
        if len(offs) > 1:
            anomalies["duplicated"].append(
                {"writer": wid, "seq": seq, "offsets": offs})
    last = {}
    for off, wid, seq in recs:
        if wid in last and seq <= last[wid][1]:
            anomalies["reordered"].append(
                {"writer": wid, "seq": seq, "offset": off,
                 "after_seq": last[wid][1], "after_offset": last[wid][0]})
        last[wid] = (off, seq)
    acked_records = 0
    for wid, (ok, _maybe) in sorted(acks.items()):
        acked_records += len(ok)
        for seq in ok:
            if (wid, seq) not in seen:
                anomalies["lost"].append({"writer": wid, "seq": seq})

    # Readers: what each printed must be the reference's bytes from 0.
    rdir = os.path.join(d, "readers")
    reads = 0
    for name in sorted(os.listdir(rdir)) if os.path.isdir(rdir) else []:
        with open(os.path.join(rdir, name), "rb") as f:
            got = f.read()
        reads += len(got)
        if ref.startswith(got):
            continue
        at = next((i for i in range(min(len(got), len(ref)))
                   if got[i] != ref[i]), min(len(got), len(ref)))
        anomalies["reader"].append({
            "reader": name, "read": len(got), "first_difference": at,
            "final_size": len(ref)})

    faults = {}
    epath = os.path.join(d, "events.log")
    if os.path.exists(epath):
        with open(epath) as f:
            for line in f:
                p = line.split(None, 3)
                if len(p) >= 3 and p[1] == "start":
                    faults[p[2]] = faults.get(p[2], 0) + 1
                elif len(p) >= 3 and p[1] == "anomaly" and \
                        p[2] == "restart":
                    anomalies["restart"].append(
                        {"at_ms": int(p[0]),
                         "detail": p[3].strip() if len(p) > 3 else ""})
    return {
        "acknowledged_writes": acked_writes,
        "acknowledged_records": acked_records,
        "failed_writes": failed_writes,
        "writers": len(acks),
        "final_bytes": len(ref),
        "final_records": len(recs),
        "reader_bytes": reads,
        "faults": dict(sorted(faults.items())),
        "faults_total": sum(faults.values()),
        "anomalies": {k: {"count": len(v), "examples": v[:EXAMPLES]}
                      for k, v in anomalies.items()},
    }


def markdown(r):
    lines = ["| seed | duration | acknowledged appends | failed writes | "
             "faults | " + " | ".join(KINDS) + " |",
             "|---" * (5 + len(KINDS)) + "|",
             "| %s | %s s | %d | %d | %d | %s |" % (
                 r.get("seed", "?"), r.get("duration_s", "?"),
                 r["acknowledged_writes"], r["failed_writes"],
                 r["faults_total"],
                 " | ".join(str(r["anomalies"][k]["count"])
                            for k in KINDS)),
             "", "| fault | times |", "|---|---|"]
    for k, n in r["faults"].items():
        lines.append("| %s | %d |" % (k, n))
    for k in KINDS:
        ex = r["anomalies"][k]["examples"]
        if ex:
            lines += ["", "%s (first %d):" % (k, len(ex)), ""]
            lines += ["* `%s`" % json.dumps(e, sort_keys=True) for e in ex]
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run_dir")
    ap.add_argument("--seed")
    ap.add_argument("--duration")
    ap.add_argument("--json")
    ap.add_argument("--md")
    a = ap.parse_args()
    try:
        r = check(a.run_dir)
    except (OSError, ValueError) as e:
        print("check.py: %s" % e, file=sys.stderr)
        return 2
    if a.seed is not None:
        r["seed"] = a.seed
    if a.duration is not None:
        r["duration_s"] = a.duration
    md = markdown(r)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(r, f, indent=2, sort_keys=True)
            f.write("\n")
    if a.md:
        with open(a.md, "w") as f:
            f.write(md)
    sys.stdout.write(md)
    return 1 if any(v["count"] for v in r["anomalies"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
