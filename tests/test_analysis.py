"""Unit tests of analysis/label_efficiency.py, analysis/seeds.py, analysis/scaling.py and analysis/sweep.py
(python unittest; run by tests/test_cli.sh): the log-interpolated "baseline labels for the
same top-1", the paired differences and the summary statistics, the split of collective time
into own cost and waiting, on hand-made numbers and run folders."""
import contextlib
import io
import json
import math
import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "analysis"))
import compare  # noqa: E402
import label_efficiency as le  # noqa: E402
import scaling  # noqa: E402
import seeds  # noqa: E402
import sweep  # noqa: E402


def row(budget, method, mean):
    return {"labels_per_class": budget, "method": method, "mean": mean}


class ScalingSplit(unittest.TestCase):
    """measure(): per-step comm over epochs 2..E; comm_min_s (minimum over ranks) is the
    collectives' own cost, the rest of comm_s waiting; runs without it give None."""

    def run_dir(self, tmp, with_min):
        d = os.path.join(tmp, "weak-p4-t1")
        os.makedirs(d)
        with open(os.path.join(d, "metrics.jsonl"), "w") as f:
            for epoch, (secs, comm, cmin) in enumerate(((9.0, 5.0, 4.0), (4.0, 1.0, 0.2), (4.0, 1.4, 0.2)), 1):
                rec = {"phase": "pretrain", "epoch": epoch, "step": 4 * epoch, "images_per_s": 128 * 4 / secs,
                       "seconds": secs, "data_s": 0.1, "comm_s": comm, "allgather_s": comm / 2,
                       "reduce_scatter_s": 0.0, "allreduce_s": comm / 2, "world_size": 4}
                if with_min:
                    rec["comm_min_s"] = cmin
                f.write(json.dumps(rec) + "\n")
        return {"mode": "weak", "ranks": "4", "threads": "1", "batch": "128", "dir": "weak-p4-t1", "status": "ok",
                "cores": "16", "host": "h"}

    def test_split(self):
        with tempfile.TemporaryDirectory() as tmp:
            m, err = scaling.measure(tmp, self.run_dir(tmp, True))
        self.assertIsNone(err)
        # epoch 1 skipped: 8 steps in 8 s; comm 2.4 s, own cost 0.4 s, waiting 2.0 s
        self.assertAlmostEqual(m["step_s"], 1.0)
        self.assertAlmostEqual(m["comm_s"], 0.3)
        self.assertAlmostEqual(m["transfer_s"], 0.05)
        self.assertAlmostEqual(m["wait_s"], 0.25)
        self.assertAlmostEqual(m["transfer_share"] + m["wait_share"], m["comm_share"])

    def test_older_metrics_without_min(self):
        with tempfile.TemporaryDirectory() as tmp:
            m, err = scaling.measure(tmp, self.run_dir(tmp, False))
        self.assertIsNone(err)
        self.assertIsNone(m["transfer_s"])
        self.assertIn("-", scaling.table([dict(m, speedup=1.0, efficiency=1.0)]))


class LabelsMatched(unittest.TestCase):
    rows = [row(10, "baseline", 20.0), row(100, "baseline", 40.0), row(1000, "baseline", 50.0),
            row(10, "finetune", 30.0), row(100, "finetune", 45.0), row(1000, "finetune", 60.0),
            row(10, "distill", 15.0)]

    def test_interpolated_in_log_labels(self):
        m = {r["labels_per_class"]: r for r in le.labels_matched(self.rows, "finetune")}
        # 30 % lies halfway between 20 % (10 labels) and 40 % (100): sqrt(10 * 100)
        self.assertAlmostEqual(m[10]["against_labels_per_class_for_same_top1"], math.sqrt(1000.0), places=9)
        # 45 % halfway between 40 % (100) and 50 % (1000)
        self.assertAlmostEqual(m[100]["against_labels_per_class_for_same_top1"], math.sqrt(1e5), places=6)
        self.assertIsNone(m[1000]["against_labels_per_class_for_same_top1"])
        self.assertEqual(m[1000]["beyond"], "above")

    def test_below_range(self):
        (m,) = le.labels_matched(self.rows, "distill")
        self.assertIsNone(m["against_labels_per_class_for_same_top1"])
        self.assertEqual(m["beyond"], "below")


class Paired(unittest.TestCase):
    def test_same_seeds_only(self):
        found = {(25, "finetune"): {1: 40.0, 2: 42.0, 3: 50.0}, (25, "distill"): {1: 41.0, 2: 45.0}}
        (g,) = le.paired(found, "distill", "finetune")
        self.assertEqual(g["diffs"], [1.0, 3.0])
        self.assertAlmostEqual(g["mean"], 2.0)
        self.assertAlmostEqual(g["std"], math.sqrt(2.0))
        self.assertEqual(g["n"], 2)

    def test_summarize(self):
        (r,) = le.summarize({(10, "linear"): {2: 30.0, 1: 20.0}})
        self.assertEqual(r["seeds"], [1, 2])
        self.assertEqual(r["top1"], [20.0, 30.0])
        self.assertAlmostEqual(r["std"], math.sqrt(50.0))


def fake_root(base, name, seed, top1):
    """A pipeline run root with eval-METHOD/eval.json and METHOD/config.resolved.cfg."""
    root = os.path.join(base, name)
    for m, t in top1.items():
        os.makedirs(os.path.join(root, "eval-" + m))
        os.makedirs(os.path.join(root, m))
        with open(os.path.join(root, "eval-" + m, "eval.json"), "w") as f:
            json.dump({"top1": t / 100.0, "n": 1000}, f)
        with open(os.path.join(root, m, "config.resolved.cfg"), "w") as f:
            f.write("# resolved\nseed = %dL;\ntrain = { lr = 0.001; };\n" % seed)
    return root


class Seeds(unittest.TestCase):
    def run_main(self, argv):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            seeds.main(argv)
        return out.getvalue()

    def test_recipes_paired_by_seed(self):
        with tempfile.TemporaryDirectory() as d:
            a1 = fake_root(d, "a1", 1, {"baseline": 50.0, "linear": 40.0, "finetune": 55.0})
            a2 = fake_root(d, "a2", 2, {"baseline": 52.0, "linear": 44.0, "finetune": 60.0})
            b2 = fake_root(d, "b2", 2, {"baseline": 60.0, "linear": 50.0, "finetune": 70.0})
            b3 = fake_root(d, "b3", 3, {"baseline": 61.0, "linear": 51.0, "finetune": 71.0})
            js = os.path.join(d, "s.json")
            text = self.run_main(["--recipe", "a", a2, a1, "--recipe", "b", b2, b3, "--json", js])
            with open(js) as f:
                r = json.load(f)["recipes"]
        self.assertEqual(r["a"]["seeds"], [1, 2])
        self.assertAlmostEqual(r["a"]["methods"]["finetune"]["mean"], 57.5)
        self.assertAlmostEqual(r["a"]["methods"]["finetune"]["sd"], math.sqrt(12.5))
        for got, want in zip(r["a"]["paired_vs_baseline"]["finetune"]["per_seed"], [5.0, 8.0]):
            self.assertAlmostEqual(got, want, places=9)
        # b vs a only over seed 2, the one both have
        pa = r["b"]["paired_vs_a"]
        self.assertEqual(pa["seeds"], [2])
        self.assertAlmostEqual(pa["methods"]["finetune"]["mean"], 10.0)
        self.assertIsNone(pa["methods"]["finetune"]["sd"])
        self.assertIn("57.5 +- 3.5", text)

    def test_bad_inputs_exit_2(self):
        with tempfile.TemporaryDirectory() as d:
            a1 = fake_root(d, "a1", 1, {"baseline": 50.0, "linear": 40.0, "finetune": 55.0})
            a1b = fake_root(d, "a1b", 1, {"baseline": 50.0, "linear": 40.0, "finetune": 55.0})
            os.remove(os.path.join(a1b, "linear", "config.resolved.cfg"))
            err = io.StringIO()
            empty = os.path.join(d, "empty")
            os.makedirs(empty)
            for argv in (["--recipe", "a", os.path.join(d, "missing")], ["--recipe", "a", a1b], ["--recipe", "a"],
                         ["--recipe", "a", empty], ["--recipe", "a", a1, "--recipe", "a", a1],
                         ["--recipe", "a", a1, "--json", os.path.join(d, "nope", "x.json")]):
                with self.assertRaises(SystemExit) as e, contextlib.redirect_stderr(err):
                    seeds.main(argv)
                self.assertEqual(e.exception.code, 2, argv)
            a1c = fake_root(d, "a1c", 1, {"baseline": 50.0, "linear": 40.0, "finetune": 55.0})
            with self.assertRaises(SystemExit) as e, contextlib.redirect_stderr(err):
                seeds.main(["--recipe", "a", a1, a1c])
            self.assertEqual(e.exception.code, 2)
        for text in ("no such folder", "empty/eval-baseline/eval.json", "given twice", "its folder does not exist"):
            self.assertIn(text, err.getvalue())
        self.assertIn("both ran seed 1", err.getvalue())



class MalformedRecords(unittest.TestCase):
    """compare.py and label_efficiency.py on hand-edited files: a value of the wrong type or a
    missing eval.json field is exit 2 naming the file and the field, never a traceback."""

    def expect_exit_2(self, fn, *texts):
        with self.assertRaises(SystemExit) as e, contextlib.redirect_stderr(io.StringIO()) as err:
            fn()
        self.assertEqual(e.exception.code, 2)
        for t in texts:
            self.assertIn(t, err.getvalue())

    def test_compare_eval_json(self):
        good = {"trained_phase": "linear", "top1": 0.5, "n": 4, "per_class": [0.5, 0.5],
                "confusion": [[1, 1], [1, 1]]}
        bad = [("top1", dict(good, top1="x")), ("top1", dict(good, top1=1.5)), ("trained_phase", {"top1": 0.5}),
               ("per_class", dict(good, per_class=["a", 0.5])), ("confusion", dict(good, confusion=[[1, 1], [1]])),
               ("'n'", dict(good, n=0.5)), ("'per_class' has 3", dict(good, per_class=[0.5, 0.5, 0.5])),
               ("JSON object", [1, 2])]
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "eval.json")
            for field, ev in bad:
                with open(path, "w") as f:
                    json.dump(ev, f)
                self.expect_exit_2(lambda: compare.load_run(tmp), path, field)
            with open(path, "w") as f:
                json.dump(good, f)
            self.assertEqual(compare.load_run(tmp)["eval"]["top1"], 0.5)
            with open(path, "w") as f:  # no per_class, no confusion: still a table row
                json.dump({"trained_phase": "linear", "top1": 0.5}, f)
            self.assertEqual(compare.class_names(compare.load_run(tmp)["eval"]), [])

    def test_label_efficiency_metrics(self):
        with tempfile.TemporaryDirectory() as tmp:
            d = os.path.join(tmp, "lpc25-seed1", "linear")
            os.makedirs(d)
            open(os.path.join(d, "final.h5"), "w").close()
            path = os.path.join(d, "metrics.jsonl")
            for rec, text in (({"phase": "linear", "epoch": 1, "step": 5, "eval_top1": "0.5"}, "'eval_top1' = \"0.5\""),
                              ({"phase": "linear", "epoch": 1, "step": 5, "loss": [1]}, "'loss'"),
                              ({"phase": "linear", "epoch": "1", "step": 5}, "'epoch'")):
                with open(path, "w") as f:
                    f.write(json.dumps(rec) + "\n")
                self.expect_exit_2(lambda: le.collect(tmp), "label_efficiency.py: " + path, text)
            open(path, "w").close()
            self.expect_exit_2(lambda: le.collect(tmp), path, "no linear epochs")


class SweepChoice(unittest.TestCase):
    """sweep.py chooses by the mean val_top1 over the repetitions that ran every variant,
    never by the hold-out's eval_top1, and refuses runs without a validation slice."""

    def make_run(self, root, rep, variant, val, ev, header="(data.val_per_class = 50, holdout_seed 2011; scored"):
        d = os.path.join(root, rep, variant)
        os.makedirs(d)
        open(os.path.join(d, "final.h5"), "w").close()
        with open(os.path.join(d, "validation_indices.txt"), "w") as f:
            f.write("# records of x in the validation slice %s as val_top1), 2 images\n1\n2\n" % header)
        with open(os.path.join(d, "metrics.jsonl"), "w") as f:
            for epoch in (1, 2):  # the last epoch counts
                f.write(json.dumps({"phase": "linear", "epoch": epoch, "step": 10 * epoch,
                                    "val_top1": val / 100 - (0.2 if epoch == 1 else 0),
                                    "eval_top1": ev / 100}) + "\n")

    def test_chosen_by_validation(self):
        with tempfile.TemporaryDirectory() as tmp:
            self.make_run(tmp, "seed1", "a", 60.0, 70.0)  # best on the hold-out, not on validation
            self.make_run(tmp, "seed1", "b", 62.0, 61.0)
            self.make_run(tmp, "seed2", "a", 61.0, 70.0)
            self.make_run(tmp, "seed2", "b", 60.0, 61.0)  # mean val: a 60.5, b 61.0
            self.make_run(tmp, "seed3", "a", 99.0, 99.0)  # seed3 ran a only: left out
            with contextlib.redirect_stderr(io.StringIO()) as err:
                rows = sweep.summarize(sweep.collect(tmp))
        self.assertIn("linear: seed3 left out: no finished b", err.getvalue())
        by = {r["variant"]: r for r in rows}
        self.assertTrue(by["b"]["chosen"])
        self.assertFalse(by["a"]["chosen"])
        self.assertEqual(by["a"]["reps"], ["seed1", "seed2"])
        self.assertAlmostEqual(by["a"]["val_mean"], 60.5)
        self.assertAlmostEqual(by["a"]["eval_mean"], 70.0)

    def test_refuses_mixed_slices(self):
        with tempfile.TemporaryDirectory() as tmp:
            self.make_run(tmp, "seed1", "a", 60.0, 70.0)
            self.make_run(tmp, "seed1", "b", 62.0, 61.0, header="(data.val_per_class = 20, holdout_seed 2011; scored")
            with self.assertRaises(SystemExit) as e, contextlib.redirect_stderr(io.StringIO()) as err:
                sweep.collect(tmp)
        self.assertEqual(e.exception.code, 2)
        self.assertIn("different validation slices", err.getvalue())

    def test_refuses_run_without_validation(self):
        with tempfile.TemporaryDirectory() as tmp:
            self.make_run(tmp, "seed1", "a", 60.0, 70.0)
            os.remove(os.path.join(tmp, "seed1", "a", "validation_indices.txt"))
            with self.assertRaises(SystemExit) as e, contextlib.redirect_stderr(io.StringIO()) as err:
                sweep.collect(tmp)
        self.assertEqual(e.exception.code, 2)
        self.assertIn("without a validation slice", err.getvalue())

    def test_bad_metrics_exit_2(self):
        """A cut last line, non-UTF-8 bytes, a missing step or a score that is not a fraction:
        exit 2 naming the file, never a traceback."""
        cases = {"cut": b'{"phase": "linear", "epoch": 3, "st',
                 "bytes": b"\xd2\xff\n",
                 "nostep": b'{"phase": "linear", "epoch": 3, "val_top1": 0.5, "eval_top1": 0.5}\n',
                 "null": b'{"phase": "linear", "epoch": 3, "step": 99, "val_top1": 0.5, "eval_top1": null}\n',
                 "string": b'{"phase": "linear", "epoch": 3, "step": 99, "val_top1": "0.5", "eval_top1": 0.5}\n'}
        for name, tail in cases.items():
            with tempfile.TemporaryDirectory() as tmp:
                self.make_run(tmp, "seed1", "a", 60.0, 70.0)
                path = os.path.join(tmp, "seed1", "a", "metrics.jsonl")
                with open(path, "ab") as f:
                    f.write(tail)
                with self.assertRaises(SystemExit) as e, contextlib.redirect_stderr(io.StringIO()) as err:
                    sweep.collect(tmp)
                self.assertEqual(e.exception.code, 2, name)
                self.assertIn(path, err.getvalue(), name)

    def test_tie_chooses_none(self):
        with tempfile.TemporaryDirectory() as tmp:
            self.make_run(tmp, "seed1", "a", 60.0, 70.0)
            self.make_run(tmp, "seed1", "b", 60.02, 61.0)  # within the table's 0.1-point precision
            self.make_run(tmp, "seed1", "c", 50.0, 61.0)
            with contextlib.redirect_stderr(io.StringIO()) as err:
                rows = sweep.summarize(sweep.collect(tmp))
        by = {r["variant"]: r for r in rows}
        self.assertFalse(any(r["chosen"] for r in rows))
        self.assertTrue(by["a"]["tie"] and by["b"]["tie"])
        self.assertFalse(by["c"]["tie"])
        self.assertIn("a, b tie on mean val_top1", err.getvalue())
        self.assertIn("| tie |", sweep.table(rows))

if __name__ == "__main__":
    unittest.main()
