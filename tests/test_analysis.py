"""Unit tests of analysis/label_efficiency.py (python unittest; run by tests/test_cli.sh):
the log-interpolated "baseline labels for the same top-1", the paired differences and the
summary statistics, on hand-made numbers."""
import math
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "analysis"))
import label_efficiency as le  # noqa: E402


def row(budget, method, mean):
    return {"labels_per_class": budget, "method": method, "mean": mean}


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


if __name__ == "__main__":
    unittest.main()
