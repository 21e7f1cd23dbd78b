#!/usr/bin/python3
"""Choose settings on the validation slice: a table of a sweep's runs by val_top1.

Usage: /usr/bin/python3 analysis/sweep.py ROOT [--json OUT]

ROOT holds one folder per repetition (e.g. an encoder seed: ROOT/seed43/), each holding one
run folder per variant (ROOT/seed43/conv-flip/, any names), every run trained with the same
data.val_per_class > 0 (docs/RESULTS.md section 7). A run counts when it finished
(final.h5 present); its scores are the last epoch's val_top1 (the validation slice: for
choosing) and eval_top1 (the hold-out: to report, never to choose). Per phase, the variant
with the highest mean val_top1 over the repetitions that ran every variant of that phase
is marked "chosen"; variants tied on it (within 0.05 points, the table's precision) are all
marked "tie" and none is chosen. A repetition that lacks a variant of the phase is left out
of that phase, named on stderr. Prints the table (top-1 %), writes it as JSON to --json OUT
when given. Exits 2 naming the file when a finished run has no val_top1 (trained without a
validation slice) or the slices differ between runs (data.val_per_class or
data.holdout_seed), as analysis/seeds.py does for its bad inputs.
"""
import argparse
import json
import os
import re
import statistics
import sys

TIE = 0.05  # points of mean val_top1: variants closer than this to the best are tied

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare import load_metrics  # noqa: E402


def die(msg):
    sys.stderr.write(f"sweep.py: {msg}\n")
    sys.exit(2)


def slice_id(run):
    """The validation slice of a run, from its validation_indices.txt header."""
    path = os.path.join(run, "validation_indices.txt")
    if not os.path.isfile(path):
        die(f"{path}: missing: {run} was trained without a validation slice (data.val_per_class)")
    with open(path) as f:
        header = f.readline()
    m = re.search(r"\(data\.val_per_class = (\d+), holdout_seed (\d+);", header)
    if not m:
        die(f"{path}:1: not a validation_indices.txt header")
    return m.groups()


def collect(root):
    """[{rep, variant, phase, val, eval}] of the finished runs ROOT/REP/VARIANT."""
    runs, slices = [], {}
    for rep in sorted(os.listdir(root)):
        rdir = os.path.join(root, rep)
        if not os.path.isdir(rdir):
            continue
        for variant in sorted(os.listdir(rdir)):
            run = os.path.join(rdir, variant)
            if not os.path.isfile(os.path.join(run, "final.h5")):
                continue
            path = os.path.join(run, "metrics.jsonl")
            if not os.path.isfile(path):
                die(f"{path}: missing (the run has final.h5)")
            recs = [r for phase_recs in load_metrics(path, die).values() for r in phase_recs]
            if not recs:
                die(f"{path}: no epochs")
            last = max(recs, key=lambda r: r["step"])
            if last.get("val_top1") is None:
                die(f"{path}: no val_top1 on its last epoch (trained without data.val_per_class)")
            for key in ("val_top1", "eval_top1"):
                v = last.get(key)
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= v <= 1.0:
                    die(f"{path}: epoch {last['epoch']}: {key} = {v!r} is not a fraction in [0, 1]")
            slices.setdefault(slice_id(run), run)
            runs.append({"rep": rep, "variant": variant, "phase": last["phase"], "val": 100.0 * last["val_top1"],
                         "eval": 100.0 * last["eval_top1"]})
    if len(slices) > 1:
        (a, ra), (b, rb) = list(slices.items())[:2]
        die(f"{ra} and {rb} used different validation slices (data.val_per_class {a[0]}, holdout_seed {a[1]} "
            f"against data.val_per_class {b[0]}, holdout_seed {b[1]})")
    return runs


def summarize(runs):
    """Per phase and variant: mean val and eval over the repetitions that ran every variant
    of the phase; the highest mean val is chosen."""
    rows = []
    for phase in sorted({r["phase"] for r in runs}):
        mine = [r for r in runs if r["phase"] == phase]
        variants = sorted({r["variant"] for r in mine})
        reps = []
        for rep in sorted({r["rep"] for r in mine}):
            lacks = sorted(set(variants) - {r["variant"] for r in mine if r["rep"] == rep})
            if not lacks:
                reps.append(rep)
            else:
                sys.stderr.write(f"sweep.py: {phase}: {rep} left out: no finished {', '.join(lacks)}\n")
        if not reps:
            die(f"phase {phase}: no repetition ran all of {', '.join(variants)}")
        for v in variants:
            sel = {r["rep"]: r for r in mine if r["variant"] == v and r["rep"] in reps}
            rows.append({"phase": phase, "variant": v, "reps": reps,
                         "val": [sel[x]["val"] for x in reps], "eval": [sel[x]["eval"] for x in reps],
                         "val_mean": statistics.fmean(sel[x]["val"] for x in reps),
                         "eval_mean": statistics.fmean(sel[x]["eval"] for x in reps), "chosen": False,
                         "tie": False})
        mine_rows = [r for r in rows if r["phase"] == phase]
        top = max(r["val_mean"] for r in mine_rows)
        best = [r for r in mine_rows if top - r["val_mean"] < TIE]
        if len(best) == 1:
            best[0]["chosen"] = True
        else:
            for r in best:
                r["tie"] = True
            sys.stderr.write(f"sweep.py: {phase}: {', '.join(r['variant'] for r in best)} tie on mean val_top1 "
                             f"({top:.1f}): none chosen; add repetitions or choose on other grounds\n")
    return rows


def table(rows):
    out = ["| phase | variant | val_top1 per repetition | mean val_top1 | mean eval_top1 (hold-out) | |",
           "| --- | --- | --- | ---: | ---: | --- |"]
    for r in rows:
        per = " / ".join("%.1f" % v for v in r["val"])
        out.append(f"| {r['phase']} | {r['variant']} | {per} ({', '.join(r['reps'])}) | {r['val_mean']:.1f} | "
                   f"{r['eval_mean']:.1f} | {'**chosen**' if r['chosen'] else 'tie' if r['tie'] else ''} |")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("root")
    ap.add_argument("--json", help="write the rows as JSON here")
    a = ap.parse_args()
    if not os.path.isdir(a.root):
        die(f"{a.root}: {'not a folder' if os.path.exists(a.root) else 'no such folder'}")
    runs = collect(a.root)
    if not runs:
        die(f"{a.root}: no finished runs (ROOT/REP/VARIANT/final.h5)")
    rows = summarize(runs)
    print(table(rows))
    if a.json:
        try:
            with open(a.json, "w") as f:
                json.dump(rows, f, indent=1)
        except OSError as e:
            die(f"--json {a.json}: {e.strerror}")


if __name__ == "__main__":
    main()
