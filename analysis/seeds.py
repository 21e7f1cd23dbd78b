#!/usr/bin/python3
"""seeds.py: top-1 of baseline, linear probe and fine-tune over several pipeline runs (seeds),
per recipe, with mean, sample standard deviation and paired differences.

Usage:
  analysis/seeds.py --recipe faithful runs/faithful/seed42 runs/faithful/seed43 ...
                    [--recipe batchnorm runs/bn/seed43 ...] [--json OUT.json]

Each run root is what jobs/pipeline.sh --runs wrote: ROOT/eval-{baseline,linear,finetune}/eval.json
(top-1 on the hold-out) and ROOT/PHASE/config.resolved.cfg (its `seed = N;` line names the
seed). Prints one table per recipe (a row per seed, then mean +- sd), the paired
differences fine-tune - baseline and linear - baseline over the seeds of that recipe, and,
for every recipe after the first, its paired difference to the first recipe over the seeds
both have. A missing eval.json or seed line stops the script naming the file (exit 2).
Only the standard library is needed.
"""
import argparse
import json
import math
import os
import re
import sys

METHODS = ("baseline", "linear", "finetune")
LABEL = {"baseline": "baseline", "linear": "linear probe", "finetune": "fine-tune"}


def die(msg):
    sys.stderr.write("seeds.py: %s\n" % msg)
    sys.exit(2)


def run_seed(root, method):
    """The seed of ROOT/METHOD from its resolved config (the line `seed = 42L;`)."""
    path = os.path.join(root, method, "config.resolved.cfg")
    try:
        with open(path) as f:
            for line in f:
                m = re.match(r"\s*seed\s*=\s*(\d+)L?\s*;", line)
                if m:
                    return int(m.group(1))
    except OSError as e:
        die("%s: %s" % (path, e.strerror))
    die("%s: no 'seed = N;' line" % path)


def load_run(root):
    """{'root', 'seed', 'top1': {method: percent}} of one pipeline run root."""
    if not os.path.isdir(root):
        die("%s: no such folder (a jobs/pipeline.sh --runs folder)" % root)
    out = {"root": root, "top1": {}}
    seeds = set()
    for m in METHODS:
        path = os.path.join(root, "eval-" + m, "eval.json")
        try:
            with open(path) as f:
                ev = json.load(f)
        except OSError as e:
            die("%s: %s (did the pipeline finish?)" % (path, e.strerror))
        except ValueError as e:
            die("%s: not JSON (%s)" % (path, e))
        if not isinstance(ev.get("top1"), (int, float)):
            die("%s: no numeric 'top1'" % path)
        out["top1"][m] = 100.0 * ev["top1"]
        seeds.add(run_seed(root, m))
    if len(seeds) != 1:
        die("%s: its phases ran with different seeds %s" % (root, sorted(seeds)))
    out["seed"] = seeds.pop()
    return out


def mean_sd(xs):
    """Mean and sample standard deviation (None for fewer than 2 values)."""
    m = sum(xs) / len(xs)
    sd = math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else None
    return m, sd


def fmt(m, sd):
    return "%.1f" % m if sd is None else "%.1f +- %.1f" % (m, sd)


def summarize(runs):
    """Per-method mean/sd and the within-recipe paired differences to the baseline."""
    s = {"seeds": [r["seed"] for r in runs], "n": len(runs), "methods": {}, "paired_vs_baseline": {}}
    for m in METHODS:
        mu, sd = mean_sd([r["top1"][m] for r in runs])
        s["methods"][m] = {"mean": mu, "sd": sd, "per_seed": [r["top1"][m] for r in runs]}
    for m in ("finetune", "linear"):
        d = [r["top1"][m] - r["top1"]["baseline"] for r in runs]
        mu, sd = mean_sd(d)
        s["paired_vs_baseline"][m] = {"mean": mu, "sd": sd, "per_seed": d}
    return s


def paired_across(ref_runs, runs):
    """method -> differences (this recipe - reference) over the seeds both recipes have."""
    ref = {r["seed"]: r for r in ref_runs}
    common = [r for r in runs if r["seed"] in ref]
    out = {"seeds": [r["seed"] for r in common], "methods": {}}
    for m in METHODS:
        d = [r["top1"][m] - ref[r["seed"]]["top1"][m] for r in common]
        if d:
            mu, sd = mean_sd(d)
            out["methods"][m] = {"mean": mu, "sd": sd, "per_seed": d}
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipe", nargs="+", action="append", required=True, metavar=("NAME", "ROOT"),
                    help="a recipe name and its pipeline run roots (one per seed); repeatable")
    ap.add_argument("--json", help="write the summary here")
    a = ap.parse_args(argv)
    if a.json and not os.path.isdir(os.path.dirname(os.path.abspath(a.json))):
        die("--json %s: its folder does not exist" % a.json)
    recipes = []
    for spec in a.recipe:
        if len(spec) < 2:
            die("--recipe %s: give a name and at least one run root" % spec[0])
        if spec[0] in (n for n, _ in recipes):
            die("--recipe %s given twice: one --recipe per name, with all its run roots" % spec[0])
        runs = sorted((load_run(r) for r in spec[1:]), key=lambda r: r["seed"])
        for x, y in zip(runs, runs[1:]):
            if x["seed"] == y["seed"]:
                die("--recipe %s: %s and %s both ran seed %d" % (spec[0], x["root"], y["root"], x["seed"]))
        recipes.append((spec[0], runs))
    result = {"recipes": {}}
    first_name, first_runs = recipes[0]
    for name, runs in recipes:
        s = summarize(runs)
        print("\n%s (%d seed%s), top-1 %% on the hold-out, final epoch" % (name, len(runs), "s" * (len(runs) > 1)))
        print("%-8s %12s %14s %13s" % ("seed", "baseline", "linear probe", "fine-tune"))
        for r in runs:
            print("%-8d %12.1f %14.1f %13.1f" % (r["seed"], r["top1"]["baseline"], r["top1"]["linear"],
                                                  r["top1"]["finetune"]))
        print("%-8s %12s %14s %13s" % ("mean", *(fmt(s["methods"][m]["mean"], s["methods"][m]["sd"]) for m in METHODS)))
        for m in ("finetune", "linear"):
            p = s["paired_vs_baseline"][m]
            print("  %s - baseline, paired: %s" % (LABEL[m], fmt(p["mean"], p["sd"])))
        if name != first_name:
            s["paired_vs_" + first_name] = pa = paired_across(first_runs, runs)
            if not pa["seeds"]:
                print("  no seed in common with %s: no paired comparison" % first_name)
            for m, p in pa["methods"].items():
                print("  %s vs %s over seeds %s: %+.1f%s" % (LABEL[m], first_name, pa["seeds"], p["mean"],
                                                          "" if p["sd"] is None else " +- %.1f" % p["sd"]))
        s["roots"] = [r["root"] for r in runs]
        result["recipes"][name] = s
    if a.json:
        with open(a.json, "w") as f:
            json.dump(result, f, indent=2)
        print("\nwrote", a.json)


if __name__ == "__main__":
    main()
