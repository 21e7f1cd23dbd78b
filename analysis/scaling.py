#!/usr/bin/env python3
"""Weak / strong scaling table of bench/scaling.sh runs (bench/SCALING.md).

Usage: python3 analysis/scaling.py OUT [--json FILE] [--plot FILE]

Reads OUT/runs.tsv (written by bench/scaling.sh: mode, ranks, threads, batch, host, cores,
status, dir per run) and OUT/DIR/metrics.jsonl of every run. Epoch 1 is warm-up; the
figures are over epochs 2..E (sums of rank 0's per-epoch times / steps). Prints one table,
checks the targets (weak-scaling efficiency >= 90 % and communication <= 10 % of the step
at 16 ranks), writes JSON (--json) and a PNG (--plot; needs matplotlib, skipped without).
Standard library only for the table and the JSON; any Python >= 3.8.
"""
import argparse
import csv
import json
import os
import re
import sys

KINDS = ("allgather_s", "reduce_scatter_s", "allreduce_s")
TARGET_EFF, TARGET_COMM, TARGET_RANKS = 0.90, 0.10, 16


def die(msg):
    """Bad input: one line naming the file on stderr, exit 2 (as every analysis/ script)."""
    sys.stderr.write("scaling.py: " + msg + "\n")
    sys.exit(2)


def read_runs(out):
    """Rows of OUT/runs.tsv; without it, the run folders named MODE-pP-tT."""
    path = os.path.join(out, "runs.tsv")
    if os.path.isfile(path):
        with open(path, newline="") as f:
            return list(csv.DictReader(f, delimiter="\t"))
    rows = []
    for d in sorted(os.listdir(out)):
        m = re.fullmatch(r"(weak|strong)-p(\d+)-t(\d+)", d)
        if m and os.path.isfile(os.path.join(out, d, "metrics.jsonl")):
            rows.append({"mode": m.group(1), "ranks": m.group(2), "threads": m.group(3), "dir": d,
                         "status": "ok", "cores": "", "host": ""})
    return rows


def measure(out, row):
    """Per-step figures of one run over epochs 2..E, or None (with a reason) if unusable."""
    if row.get("status") != "ok":
        return None, row.get("status") or "no status"
    path = os.path.join(out, row["dir"], "metrics.jsonl")
    try:
        with open(path) as f:
            recs = [json.loads(x) for x in f if x.strip()]
    except (OSError, ValueError) as e:
        return None, "%s: %s" % (path, e)
    recs = [r for r in recs if isinstance(r, dict) and r.get("phase") == "pretrain"]
    if not recs:
        return None, "no pretrain epoch in " + path
    warm = len(recs) > 1
    prev = recs[0]["step"] if warm else 0
    used = recs[1:] if warm else recs
    steps = used[-1]["step"] - prev
    secs = sum(r["seconds"] for r in used)
    if steps <= 0 or secs <= 0:
        return None, "no steps in " + path
    def tot(k):
        return sum(r.get(k, 0.0) for r in used)
    ranks = int(used[-1].get("world_size", row["ranks"]))
    batch = int(row.get("batch") or 0)
    if not batch:  # images_per_s = batch x steps / seconds (last epoch)
        last_steps = used[-1]["step"] - (recs[-2]["step"] if len(recs) > 1 else 0)
        batch = int(round(used[-1]["images_per_s"] * used[-1]["seconds"] / max(1, last_steps)))
    step = secs / steps
    comm = tot("comm_s") / steps
    m = {"mode": row["mode"], "ranks": ranks, "threads": int(row["threads"]), "global_batch": batch,
         "per_rank_batch": batch / ranks, "images_per_s": batch * steps / secs, "step_s": step,
         "compute_s": step - comm, "data_s": tot("data_s") / steps, "comm_s": comm,
         "allgather_s": tot("allgather_s") / steps, "reduce_scatter_s": tot("reduce_scatter_s") / steps,
         "allreduce_s": tot("allreduce_s") / steps, "comm_share": comm / step,
         "steps_measured": steps, "epochs_measured": len(used), "warmup_skipped": warm,
         "max_rss_mib_rank0": max(r.get("max_rss_mib", 0.0) for r in recs),
         "host": row.get("host", ""), "cores": int(row["cores"]) if row.get("cores") else None, "dir": row["dir"],
         "cpu_busy_before": float(row["cpu_busy_before"]) if row.get("cpu_busy_before") else None}
    m["other_comm_s"] = max(0.0, comm - sum(m[k] for k in KINDS))
    # comm_min_s (minimum over ranks; absent before 2026-11-30): the slowest rank's time in
    # collectives = their own cost; the rest of comm_s is waiting for slower ranks.
    if all("comm_min_s" in r for r in used):
        m["transfer_s"] = tot("comm_min_s") / steps
        m["wait_s"] = max(0.0, comm - m["transfer_s"])
        m["transfer_share"] = m["transfer_s"] / step
        m["wait_share"] = m["wait_s"] / step
    else:
        m["transfer_s"] = m["wait_s"] = m["transfer_share"] = m["wait_share"] = None
    m["oversubscribed"] = bool(m["cores"] and ranks * m["threads"] > m["cores"])
    return m, None


def add_efficiency(runs):
    """Speedup and efficiency against the smallest rank count of the same series
    (mode, threads, and per-rank batch for weak / global batch for strong)."""
    def key(r):
        return (r["mode"], r["threads"], r["per_rank_batch"] if r["mode"] == "weak" else r["global_batch"])
    for r in runs:
        base = min((q for q in runs if key(q) == key(r)), key=lambda q: q["ranks"])
        sp = r["images_per_s"] / base["images_per_s"]
        r["base_ranks"] = base["ranks"]
        r["speedup"] = sp
        # weak: (img/s_p / p) / (img/s_1 / 1); strong: img/s_p / (p x img/s_1), both relative to base
        r["efficiency"] = sp * base["ranks"] / r["ranks"]


def targets(runs):
    res = {}
    for mode in ("weak", "strong"):
        at = [r for r in runs if r["mode"] == mode and r["ranks"] == TARGET_RANKS]
        if not at:
            res[mode] = None
            continue
        r = at[0]
        t = {"comm_share": r["comm_share"], "comm_ok": r["comm_share"] <= TARGET_COMM,
             "transfer_share": r["transfer_share"], "wait_share": r["wait_share"],
             "oversubscribed": r["oversubscribed"], "base_ranks": r["base_ranks"]}
        if mode == "weak":
            t["efficiency"] = r["efficiency"]
            t["efficiency_ok"] = r["efficiency"] >= TARGET_EFF
        res[mode] = t
    return res


COLS = [("mode", "mode", "%s"), ("ranks", "ranks", "%d"), ("threads", "thr", "%d"), ("global_batch", "G", "%d"),
        ("images_per_s", "img/s", "%.1f"), ("speedup", "speedup", "%.2f"), ("efficiency", "eff", "%.1f%%"),
        ("step_s", "step s", "%.4f"), ("compute_s", "compute s", "%.4f"), ("data_s", "data s", "%.4f"),
        ("allgather_s", "allgather s", "%.5f"), ("reduce_scatter_s", "red-scat s", "%.5f"),
        ("allreduce_s", "allreduce s", "%.5f"), ("other_comm_s", "other s", "%.5f"),
        ("comm_share", "comm %", "%.1f%%"), ("transfer_share", "xfer %", "%.1f%%"), ("wait_share", "wait %", "%.1f%%")]


def table(runs):
    cells = [[h for _, h, _ in COLS] + [""]]
    for r in runs:
        row = []
        for k, _, f in COLS:
            if r[k] is None:
                row.append("-")
                continue
            v = r[k] * 100 if f.endswith("%%") else r[k]
            row.append(f % v)
        row.append("OVERSUBSCRIBED" if r["oversubscribed"] else "")
        cells.append(row)
    w = [max(len(c[i]) for c in cells) for i in range(len(cells[0]))]
    lines = ["  ".join(c[i].rjust(w[i]) if i else c[i].ljust(w[i]) for i in range(len(c))).rstrip() for c in cells]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def plot(runs, path, busy_note=False):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("scaling.py: matplotlib missing: no plot (run this again where it is installed)")
        return False
    fig, ax = plt.subplots(1, 3, figsize=(15, 4.2))
    for mode, color in (("weak", "C0"), ("strong", "C1")):
        rs = sorted((r for r in runs if r["mode"] == mode), key=lambda r: r["ranks"])
        if not rs:
            continue
        p = [r["ranks"] for r in rs]
        ax[0].plot(p, [r["images_per_s"] for r in rs], "o-", color=color, label=mode)
        b = rs[0]
        ideal = [b["images_per_s"] * q / b["ranks"] for q in p]
        ax[0].plot(p, ideal, ":", color=color, label=mode + " ideal")
        ax[1].plot(p, [100 * r["efficiency"] for r in rs], "o-", color=color, label=mode)
        ax[2].plot(p, [100 * r["comm_share"] for r in rs], "o-", color=color, label=mode + ": all comm")
        if all(r["transfer_share"] is not None for r in rs):
            ax[2].plot(p, [100 * r["transfer_share"] for r in rs], "s-", color=color, mfc="none",
                       label=mode + ": collectives' own cost (slowest rank)")
        for k, st in zip(KINDS, ("--", "-.", ":")):
            ax[2].plot(p, [100 * r[k] / r["step_s"] for r in rs], st, color=color, alpha=0.6,
                       label="%s: %s" % (mode, k[:-2].replace("_", "-")))
        over = [r for r in rs if r["oversubscribed"]]
        for a, f in ((ax[1], "efficiency"), (ax[2], "comm_share")):
            a.plot([r["ranks"] for r in over], [100 * r[f] for r in over], "x", color="k", ms=10)
    ax[1].axhline(100 * TARGET_EFF, color="gray", lw=0.8, ls="--", label="target (weak)")
    ax[2].axhline(100 * TARGET_COMM, color="gray", lw=0.8, ls="--", label="target")
    allp = sorted({r["ranks"] for r in runs})
    for a, t in zip(ax, ("images/s", "efficiency % (x: oversubscribed)", "share of step time %")):
        a.set_xscale("log", base=2)
        a.set_xticks(allp)
        a.set_xticklabels([str(q) for q in allp])
        a.set_xlabel("MPI ranks")
        a.set_title(t)
        a.grid(alpha=0.3)
        a.legend(fontsize=7)
    hosts = sorted({"%s (%s CPUs)" % (r["host"], r["cores"]) for r in runs})
    fig.suptitle("simclr-mpi pretrain scaling: " + ", ".join(hosts) + (
        "  [CPUs BUSY before the runs: NOT valid]" if busy_note else ""), fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def main():
    ap = argparse.ArgumentParser(description="scaling table of bench/scaling.sh output (bench/SCALING.md)")
    ap.add_argument("out", help="the --out folder of bench/scaling.sh")
    ap.add_argument("--json", help="write the numbers here")
    ap.add_argument("--plot", help="write a PNG here (needs matplotlib)")
    a = ap.parse_args()
    if not os.path.isdir(a.out):
        die(a.out + ": no such folder")
    runs, skipped = [], []
    for row in read_runs(a.out):
        try:
            m, why = measure(a.out, row)
        except (KeyError, TypeError, ValueError, ZeroDivisionError) as e:  # a hand-edited or foreign record
            m, why = None, "%s/metrics.jsonl: a malformed record (%s: %s)" % (row.get("dir"), type(e).__name__, e)
        if m:
            runs.append(m)
        else:
            skipped.append("%s-p%s: %s" % (row.get("mode"), row.get("ranks"), why))
    if not runs:
        die("no usable run in %s (%s)" % (a.out, "; ".join(skipped) or "runs.tsv empty"))
    runs.sort(key=lambda r: (r["mode"] != "weak", r["threads"], r["global_batch"] if r["mode"] == "strong" else 0,
                             r["ranks"]))
    add_efficiency(runs)
    print(table(runs))
    for s in skipped:
        print("not measured: " + s)
    if any(r["base_ranks"] != 1 for r in runs):
        print("note: some series lack a 1-rank run; their speedup/efficiency are relative to the smallest rank count")
    busy = max((r["cpu_busy_before"] for r in runs if r["cpu_busy_before"] is not None), default=None)
    machine_busy = busy is not None and busy > 0.10
    if machine_busy:
        print("WARNING: %.0f%% of the CPUs were busy before the runs (another job): the timings are NOT valid"
              % (100 * busy))
    tg = targets(runs)
    for mode, t in tg.items():
        if t is None:
            print("target (%s): no %d-rank run" % (mode, TARGET_RANKS))
            continue
        msg = "target (%s, %d ranks): comm %.1f%% of the step (<= %d%%: %s)" % (
            mode, TARGET_RANKS, 100 * t["comm_share"], 100 * TARGET_COMM, "met" if t["comm_ok"] else "NOT met")
        if "efficiency" in t:
            msg += "; efficiency %.1f%% (>= %d%%: %s)" % (100 * t["efficiency"], 100 * TARGET_EFF,
                                                         "met" if t["efficiency_ok"] else "NOT met")
        if t["transfer_share"] is not None:
            msg += "; of it, collectives' own cost %.1f%%, waiting for slower ranks %.1f%%" % (
                100 * t["transfer_share"], 100 * t["wait_share"])
        if t["oversubscribed"]:
            msg += " [OVERSUBSCRIBED: not a valid scaling point]"
        print(msg)
    if a.json:
        doc = {"schema": "simclr-mpi-scaling/1", "out": os.path.abspath(a.out), "machine_busy": machine_busy,
               "cpu_busy_before_max": busy, "valid": not machine_busy and not any(r["oversubscribed"] for r in runs),
               "notes": ["per-step figures over epochs 2..E of rank 0's metrics.jsonl (epoch 1 = warm-up)",
                         "comm = time inside MPI collectives on rank 0, waiting for slower ranks included; "
                         "compute = step - comm (includes data_s: reading + augmenting)",
                         "efficiency: weak (img/s_p/p)/(img/s_1/1); strong img/s_p/(p img/s_1), "
                         "relative to base_ranks when there is no 1-rank run"],
               "targets": {"weak_efficiency_min": TARGET_EFF, "comm_share_max": TARGET_COMM, "ranks": TARGET_RANKS,
                           "result": tg},
               "runs": runs, "not_measured": skipped}
        with open(a.json, "w") as f:
            json.dump(doc, f, indent=1)
            f.write("\n")
        print("wrote " + a.json)
    if a.plot and plot(runs, a.plot, machine_busy):
        print("wrote " + a.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
