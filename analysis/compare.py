#!/usr/bin/python3
"""Compare simclr-mpi runs: accuracy table, training curves, confusion matrix, HTML report.

Usage: /usr/bin/python3 analysis/compare.py RUN_ROOT [--out DIR]
       /usr/bin/python3 analysis/compare.py RUN_DIR [RUN_DIR ...] [--out DIR]

A run folder is any folder holding metrics.jsonl or eval.json; RUN_ROOT is searched
one level deep (the pipeline's ROOT/pretrain, ROOT/eval-finetune, ...). Writes
accuracy.png, loss.png, confusion.png, summary.json and report.html (self-contained)
into --out (default RUN_ROOT/report).
"""
import argparse
import base64
import html
import json
import os
import sys

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)
from matplotlib.ticker import MaxNLocator  # noqa: E402

METHODS = [("baseline", "baseline"), ("linear", "linear probe"), ("finetune", "fine-tune")]
CLASS_PHASES = ("linear", "finetune", "baseline")
COLORS = {"pretrain": "C0", "linear": "C1", "finetune": "C2", "baseline": "C3"}
# keras.io example "Semi-supervised image classification using contrastive pretraining
# with SimCLR": top-1 % on the full STL-10 test set (8000 images). Not our numbers.
REFERENCE = {"baseline": 60.1, "linear": 56.2, "finetune": 67.0}
REFERENCE_NOTE = "keras.io SimCLR example, top-1 on the full STL-10 test set, 8000 images"


def die(msg):
    """Bad input: one line naming the file on stderr, exit 2 (as every analysis/ script)."""
    sys.stderr.write(f"compare.py: {msg}\n")
    sys.exit(2)


def is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def is_run(d):
    return any(os.path.isfile(os.path.join(d, f)) for f in ("metrics.jsonl", "eval.json"))


def find_runs(paths):
    runs = []
    for p in paths:
        if not os.path.isdir(p):
            die(f"{p}: no such folder")
        if is_run(p):
            runs.append(p)
        else:
            runs += [os.path.join(p, c) for c in sorted(os.listdir(p)) if is_run(os.path.join(p, c))]
    if not runs:
        die(f"no run folder (a folder with metrics.jsonl or eval.json) in {', '.join(paths)}")
    return runs


def load_metrics(path, fail=None):
    """{phase: [record, ...] by epoch}; of records repeated by a resumed run the last wins.
    A line that is not a JSON object with a string phase, integer epoch and step and numbers
    (or null) elsewhere, or a file that is not UTF-8, ends the script through fail(message)
    (default: this script's die, exit 2)."""
    fail = fail or die
    last = {}
    try:
        with open(path, encoding="utf-8") as f:
            lines = list(f)
    except UnicodeDecodeError as e:
        fail(f"{path}: not UTF-8 text (byte {e.start}): not a metrics.jsonl that simclr wrote")
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            fail(f"{path} line {lineno}: not valid JSON ({e.msg} at column {e.colno}; a run killed while writing "
                 "leaves a cut line: delete it)")
        if not isinstance(rec, dict) or "phase" not in rec or "epoch" not in rec:
            fail(f"{path} line {lineno}: expected an object with 'phase' and 'epoch'")
        if not isinstance(rec.get("step"), int) or not isinstance(rec["epoch"], int):
            fail(f"{path} line {lineno}: 'epoch' or 'step' missing or not an integer")
        if not isinstance(rec["phase"], str):
            fail(f"{path} line {lineno}: 'phase' is not a string")
        for key, v in rec.items():
            if key != "phase" and v is not None and not is_number(v):
                fail(f"{path} line {lineno}: '{key}' = {json.dumps(v)} is not a number")
        last[(rec["phase"], rec["epoch"])] = rec
    out = {}
    for (phase, _), rec in sorted(last.items()):
        out.setdefault(phase, []).append(rec)
    return out


def check_eval(path, ev):
    """The fields of an eval.json (written by `simclr eval`) this script reads: die naming the
    first one missing or of the wrong type."""
    if not isinstance(ev, dict):
        die(f"{path}: expected a JSON object")
    if not is_number(ev.get("top1")) or not 0 <= ev["top1"] <= 1:
        die(f"{path}: 'top1' missing or not a fraction in [0, 1]")
    if not isinstance(ev.get("trained_phase"), str):
        die(f"{path}: 'trained_phase' missing or not a string")
    if "n" in ev and (not isinstance(ev["n"], int) or isinstance(ev["n"], bool)):
        die(f"{path}: 'n' is not an integer")
    per_class, confusion = ev.get("per_class", []), ev.get("confusion", [])
    if not isinstance(per_class, list) or not all(is_number(a) for a in per_class):
        die(f"{path}: 'per_class' is not a list of numbers")
    k = len(confusion) if isinstance(confusion, list) else -1
    if k < 0 or not all(isinstance(r, list) and len(r) == k and all(isinstance(v, int) for v in r) for r in confusion):
        die(f"{path}: 'confusion' is not a square matrix of integer counts")
    if per_class and confusion and len(per_class) != k:
        die(f"{path}: 'per_class' has {len(per_class)} classes, 'confusion' {k}")


def load_run(d):
    run = {"dir": d, "name": os.path.basename(os.path.normpath(d)), "metrics": {}, "eval": None, "config": None}
    if os.path.isfile(os.path.join(d, "metrics.jsonl")):
        run["metrics"] = load_metrics(os.path.join(d, "metrics.jsonl"))
    path = os.path.join(d, "eval.json")
    if os.path.isfile(path):
        try:
            with open(path) as f:
                run["eval"] = json.load(f)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            die(f"{path}: not valid JSON ({e})")
        check_eval(path, run["eval"])
    if os.path.isfile(os.path.join(d, "config.resolved.cfg")):
        with open(os.path.join(d, "config.resolved.cfg")) as f:
            run["config"] = f.read()
    return run


def summarize(runs):
    """One row per method: eval.json if there is one, else the training log's last eval_top1."""
    rows = []
    for method, label in METHODS:
        row = {"method": method, "label": label, "top1": None, "n": None, "eval_set": "(no run)",
               "from_log": False, "source": None}
        evals = [r for r in runs if r["eval"] and r["eval"].get("trained_phase") == method]
        logged = [(r, x) for r in runs for x in r["metrics"].get(method, []) if x.get("eval_top1") is not None]
        if evals:
            ev = evals[-1]["eval"]
            row.update(top1=100 * ev["top1"], n=ev.get("n"), eval_set=ev.get("eval_set", ""),
                       source=os.path.join(evals[-1]["dir"], "eval.json"))
        elif logged:
            r, x = logged[-1]
            row.update(top1=100 * x["eval_top1"], from_log=True, source=os.path.join(r["dir"], "metrics.jsonl"),
                       eval_set=f"held-out eval slice after epoch {x['epoch']} (training log; no eval.json)")
        rows.append(row)
    return rows


def print_table(rows):
    print(f"{'method':<15} {'top-1':>6}   {'n':>5}  eval images")
    for r in rows:
        top = "-" if r["top1"] is None else f"{r['top1']:.1f}"
        mark = "*" if r["from_log"] else " "
        print(f"{r['label']:<15} {top:>6}{mark}  {r['n'] if r['n'] is not None else '-':>5}  {r['eval_set']}")
    if any(r["from_log"] for r in rows):
        print("* from the training run's metrics.jsonl (eval_top1 of its last logged epoch), not eval.json")
    print(f"\nreference figures, NOT from these runs ({REFERENCE_NOTE}):")
    for method, label in METHODS:
        print(f"{label:<15} {REFERENCE[method]:>6.1f}")


def series(runs, phase, key):
    """[(label, epochs, values)] for each run that logged `key` in `phase`."""
    out = []
    for r in runs:
        recs = [x for x in r["metrics"].get(phase, []) if x.get(key) is not None]
        if recs:
            label = phase if r["name"] == phase else f"{phase} ({r['name']})"
            out.append((label, [x["epoch"] for x in recs], [x[key] for x in recs]))
    return out


def plot_curves(runs, panels, path, ylabel, percent):
    """panels: [(title, [(phase, key, linestyle), ...]), ...], one subplot each."""
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.2))
    for ax, (title, lines) in zip(axes, panels):
        for phase, key, style in lines:
            for label, x, y in series(runs, phase, key):
                ax.plot(x, [100 * v for v in y] if percent else y, linestyle=style, marker="o", ms=3,
                        color=COLORS.get(phase), label=f"{label}: {key}")
        ax.set(title=title, xlabel="epoch", ylabel=ylabel)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
        else:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def class_names(ev):
    return ev.get("class_names") or [str(i) for i in range(len(ev.get("per_class") or ev.get("confusion") or []))]


def plot_confusion(ev, path):
    cm, names = ev["confusion"], class_names(ev)
    fig, ax = plt.subplots(figsize=(7.5, 6.5))
    im = ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    top = max(max(row) for row in cm) or 1
    for i, row in enumerate(cm):
        for j, v in enumerate(row):
            ax.text(j, i, v, ha="center", va="center", fontsize=8, color="white" if v > top / 2 else "black")
    ax.set(xlabel="predicted", ylabel="true",
           title=f"{ev.get('trained_phase')} eval: top-1 {100 * ev['top1']:.1f}% (n={ev.get('n')})")
    fig.colorbar(im, ax=ax)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def html_table(header, rows, diag=False):
    e = lambda v: html.escape(str(v))  # noqa: E731
    head = "".join(f"<th>{e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<th>{e(c)}</th>" if j == 0 else
                                    f"<td{' class=d' if diag and i == j - 1 else ''}>{e(c)}</td>"
                                    for j, c in enumerate(row)) + "</tr>" for i, row in enumerate(rows))
    return f"<table><tr>{head}</tr>{body}</table>"


def write_html(path, runs, rows, images):
    fmt = lambda v: "-" if v is None else f"{v:.1f}"  # noqa: E731
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>simclr-mpi report</title><style>"
             "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin:1em 0}"
             "td,th{border:1px solid #bbb;padding:3px 8px;text-align:right}td.d{background:#cde}"
             "pre{background:#f4f4f4;padding:1em}</style></head><body><h1>simclr-mpi report</h1>",
             "<h2>Top-1 accuracy (%)</h2>",
             html_table(["method", "top-1 (ours)", "n", "eval images", "reference*"],
                        [[r["label"], fmt(r["top1"]) + (" (log)" if r["from_log"] else ""),
                          r["n"] if r["n"] is not None else "-", r["eval_set"], fmt(REFERENCE[r["method"]])]
                         for r in rows]),
             f"<p>* reference figures, not from these runs: {html.escape(REFERENCE_NOTE)}. (log): eval_top1 from the training run's metrics.jsonl, "
             "no eval.json.</p>"]
    for title, png in images:
        with open(png, "rb") as f:
            parts.append(f"<h2>{html.escape(title)}</h2><img src='data:image/png;base64,"
                         f"{base64.b64encode(f.read()).decode()}'>")
    for r in runs:
        ev = r["eval"]
        if not ev:
            continue
        names = class_names(ev)
        parts.append(f"<h2>{html.escape(r['name'])}: {html.escape(str(ev.get('trained_phase')))} "
                     f"top-1 {100 * ev['top1']:.1f}% on {html.escape(str(ev.get('eval_set', '?')))}</h2>"
                     f"<p>checkpoint {html.escape(str(ev.get('checkpoint')))}, data {html.escape(str(ev.get('data_dir')))}"
                     f" split {html.escape(str(ev.get('split')))}, n={ev.get('n')}</p>")
        if ev.get("per_class"):
            parts.append("<h3>Per-class accuracy (%)</h3>" + html_table(
                ["class", "top-1"], [[n, f"{100 * a:.1f}"] for n, a in zip(names, ev["per_class"])]))
        if ev.get("confusion"):
            parts.append("<h3>Confusion matrix (rows: true class, columns: predicted)</h3>" + html_table(
                ["true \\ predicted"] + names, [[n] + row for n, row in zip(names, ev["confusion"])], diag=True))
    for r in runs:
        if r["config"] is not None:
            parts.append(f"<details><summary>{html.escape(r['dir'])}/config.resolved.cfg</summary>"
                         f"<pre>{html.escape(r['config'])}</pre></details>")
    with open(path, "w") as f:
        f.write("\n".join(parts) + "\n</body></html>\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("paths", nargs="+", metavar="RUN_ROOT_OR_RUN_DIR")
    ap.add_argument("--out", help="report folder (default RUN_ROOT/report)")
    args = ap.parse_args()
    runs = [load_run(d) for d in find_runs(args.paths)]
    if not any(r["metrics"] or r["eval"] for r in runs):
        die("no metrics or eval records in " + ", ".join(r["dir"] for r in runs))
    out = args.out or os.path.join(args.paths[0] if len(args.paths) == 1 else
                                   os.path.commonpath([os.path.abspath(p) for p in args.paths]), "report")
    os.makedirs(out, exist_ok=True)

    rows = summarize(runs)
    print_table(rows)
    images = [("Accuracy", os.path.join(out, "accuracy.png")), ("Loss", os.path.join(out, "loss.png"))]
    plot_curves(runs, [("pretrain (train batches)", [("pretrain", "contrastive_acc", "-"),
                                                     ("pretrain", "probe_acc", "--")]),
                       ("classifiers (eval_top1 solid, train_acc dashed)",
                        [(p, k, s) for p in CLASS_PHASES for k, s in (("eval_top1", "-"), ("train_acc", "--"))])],
                images[0][1], "accuracy (%)", percent=True)
    plot_curves(runs, [("pretrain", [("pretrain", "loss", "-"), ("pretrain", "probe_loss", "--")]),
                       ("classifiers", [(p, "loss", "-") for p in CLASS_PHASES])],
                images[1][1], "mean train loss", percent=False)
    finetune_evals = [r["eval"] for r in runs if r["eval"] and r["eval"].get("trained_phase") == "finetune"]
    if finetune_evals and finetune_evals[-1].get("confusion"):
        images.append(("Fine-tune confusion matrix", os.path.join(out, "confusion.png")))
        plot_confusion(finetune_evals[-1], images[-1][1])
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump({"rows": rows, "reference": {"note": REFERENCE_NOTE, "top1": REFERENCE},
                   "runs": [r["dir"] for r in runs]}, f, indent=2)
    write_html(os.path.join(out, "report.html"), runs, rows, images)
    print(f"\nwrote {', '.join(os.path.basename(p) for _, p in images)}, summary.json, report.html to {out}")


if __name__ == "__main__":
    main()
