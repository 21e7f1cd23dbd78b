#!/usr/bin/python3
"""Label-efficiency table and plot from jobs/label_efficiency.sh runs.

Usage: /usr/bin/python3 analysis/label_efficiency.py STUDY_ROOT [--out DIR]

STUDY_ROOT holds lpcB-seedS/PHASE run folders (B labels per class, seed S; PHASE one of
linear, finetune, baseline, distill). A run counts when it finished (final.h5 present);
its top-1 is the eval_top1 of the last epoch in its metrics.jsonl (the hold-out slice,
final epoch, no best-epoch picking). Writes label_efficiency.json (per budget and method:
every seed's top-1, mean, sample standard deviation, n), label_efficiency.md (the table)
and label_efficiency.png (top-1 against labels per class, error bars = standard deviation
over seeds) into --out (default STUDY_ROOT/report), and prints the table.
"""
import argparse
import json
import math
import os
import re
import statistics
import sys

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare import load_metrics  # noqa: E402

METHODS = [("baseline", "baseline (supervised only)"), ("linear", "linear probe"),
           ("finetune", "fine-tune"), ("distill", "self-training (student)")]
RUN_RE = re.compile(r"^lpc(\d+)-seed(\d+)$")


def die(msg):
    """Bad input: one line naming the file on stderr, exit 2 (as every analysis/ script)."""
    sys.stderr.write(f"label_efficiency.py: {msg}\n")
    sys.exit(2)


def collect(root):
    """{(budget, method): {seed: top1 %}} of the finished runs under root."""
    found, unfinished = {}, []
    for name in sorted(os.listdir(root)):
        m = RUN_RE.match(name)
        if not m or not os.path.isdir(os.path.join(root, name)):
            continue
        budget, seed = int(m.group(1)), int(m.group(2))
        for method, _ in METHODS:
            d = os.path.join(root, name, method)
            if not os.path.isdir(d):
                continue
            if not os.path.isfile(os.path.join(d, "final.h5")):
                unfinished.append(d)
                continue
            path = os.path.join(d, "metrics.jsonl")
            if not os.path.isfile(path):
                die(f"{d}: final.h5 but no metrics.jsonl")
            recs = load_metrics(path, die).get(method, [])
            if not recs:
                die(f"{path}: no {method} epochs")
            if recs[-1].get("eval_top1") is None:
                die(f"{path}: no eval_top1 on its last epoch")
            found.setdefault((budget, method), {})[seed] = 100.0 * recs[-1]["eval_top1"]
    return found, unfinished


def summarize(found):
    rows = []
    for (budget, method), by_seed in sorted(found.items()):
        vals = [by_seed[s] for s in sorted(by_seed)]
        rows.append({"labels_per_class": budget, "method": method, "seeds": sorted(by_seed), "top1": vals,
                     "mean": statistics.fmean(vals), "std": statistics.stdev(vals) if len(vals) > 1 else 0.0,
                     "n": len(vals)})
    return rows


def paired(found, method, against):
    """Per budget: method minus `against` on the same seeds (e.g. the student minus its
    teacher): mean, sample std and n of the differences, in points."""
    out = []
    for (budget, m), by_seed in sorted(found.items()):
        ref = found.get((budget, against), {})
        if m != method:
            continue
        diffs = [by_seed[s] - ref[s] for s in sorted(by_seed) if s in ref]
        if diffs:
            out.append({"labels_per_class": budget, "method": method, "minus": against, "diffs": diffs,
                        "mean": statistics.fmean(diffs), "std": statistics.stdev(diffs) if len(diffs) > 1 else 0.0,
                        "n": len(diffs)})
    return out


def labels_matched(rows, method, against="baseline"):
    """Per budget of `method`: how many labels per class `against` needs for the same mean
    top-1, interpolated linearly in log(labels) between its measured budgets; None when
    outside them (reported as beyond the range). The user's question: labels saved."""
    ref = sorted((r["labels_per_class"], r["mean"]) for r in rows if r["method"] == against)
    out = []
    for r in sorted((r for r in rows if r["method"] == method), key=lambda r: r["labels_per_class"]):
        need = None
        for (b0, a0), (b1, a1) in zip(ref, ref[1:]):
            if min(a0, a1) <= r["mean"] <= max(a0, a1) and a1 != a0:
                t = (r["mean"] - a0) / (a1 - a0)
                need = math.exp(math.log(b0) + t * (math.log(b1) - math.log(b0)))
                break
        out.append({"labels_per_class": r["labels_per_class"], "method": method, "top1": r["mean"],
                    "against": against, "against_labels_per_class_for_same_top1": need,
                    "beyond": None if need is not None or not ref else
                    ("above" if r["mean"] > max(a for _, a in ref) else "below")})
    return out


def table(rows):
    budgets = sorted({r["labels_per_class"] for r in rows})
    methods = [(m, label) for m, label in METHODS if any(r["method"] == m for r in rows)]
    cell = {(r["labels_per_class"], r["method"]): r for r in rows}
    lines = ["| labels per class | " + " | ".join(label for _, label in methods) + " |",
             "|---:|" + "---:|" * len(methods)]
    for b in budgets:
        out = []
        for m, _ in methods:
            r = cell.get((b, m))
            out.append("-" if r is None else f"{r['mean']:.1f} ± {r['std']:.1f} (n={r['n']})")
        lines.append(f"| {b} | " + " | ".join(out) + " |")
    return "\n".join(lines) + "\n"


def plot(rows, path):
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for i, (m, label) in enumerate(METHODS):
        rs = sorted((r for r in rows if r["method"] == m), key=lambda r: r["labels_per_class"])
        if rs:
            ax.errorbar([r["labels_per_class"] for r in rs], [r["mean"] for r in rs], yerr=[r["std"] for r in rs],
                        marker="o", capsize=3, color=f"C{i}", label=label)
    ax.set_xscale("log")
    budgets = sorted({r["labels_per_class"] for r in rows})
    ax.set_xticks(budgets)
    ax.set_xticklabels([str(b) for b in budgets])
    ax.minorticks_off()
    ax.set_xlabel("labeled images per class (log scale)")
    ax.set_ylabel("top-1 on the hold-out slice (%)")
    ax.set_title("Label efficiency: mean ± std over seeds, final epoch")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root")
    ap.add_argument("--out")
    a = ap.parse_args()
    if not os.path.isdir(a.root):
        die(f"{a.root}: no such folder")
    found, unfinished = collect(a.root)
    if not found:
        die(f"no finished run (lpcB-seedS/PHASE with final.h5) under {a.root}")
    rows = summarize(found)
    out = a.out or os.path.join(a.root, "report")
    if os.path.exists(out) and not os.path.isdir(out):
        die(f"--out {out}: exists and is not a folder")
    os.makedirs(out, exist_ok=True)
    md = table(rows)
    gains = (paired(found, "distill", "finetune") + paired(found, "finetune", "baseline")
             + paired(found, "linear", "baseline"))
    matched = labels_matched(rows, "linear") + labels_matched(rows, "finetune") + labels_matched(rows, "distill")
    if any(m["against_labels_per_class_for_same_top1"] or m["beyond"] for m in matched):
        md += ("\n| labels per class | method (mean top-1) | baseline labels per class for the same top-1 "
               "(log-interpolated) |\n|---:|---|---:|\n")
        names = dict(METHODS)
        for m in matched:
            need = m["against_labels_per_class_for_same_top1"]
            cell = f"{need:.0f}" if need else (f"{m['beyond']} the measured baseline range" if m["beyond"] else "-")
            md += f"| {m['labels_per_class']} | {names[m['method']]} ({m['top1']:.1f} %) | {cell} |\n"
    if gains:
        md += "\n| labels per class | difference (points, same seeds) | mean ± std (n) |\n|---:|---|---:|\n"
        names = dict(METHODS)
        for g in gains:
            md += (f"| {g['labels_per_class']} | {names[g['method']]} - {names[g['minus']]} | "
                   f"{g['mean']:+.1f} ± {g['std']:.1f} (n={g['n']}) |\n")
    with open(os.path.join(out, "label_efficiency.json"), "w") as f:
        json.dump({"root": os.path.abspath(a.root), "rows": rows, "paired_differences": gains, "labels_matched": matched,
                   "unfinished": unfinished}, f, indent=1)
    with open(os.path.join(out, "label_efficiency.md"), "w") as f:
        f.write(md)
    plot(rows, os.path.join(out, "label_efficiency.png"))
    print(md, end="")
    if unfinished:
        print(f"not counted (no final.h5: unfinished or failed runs): {', '.join(unfinished)}")
    print(f"wrote {out}/label_efficiency.{{json,md,png}}")


if __name__ == "__main__":
    main()
