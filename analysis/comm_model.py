#!/usr/bin/env python3
"""Alpha-beta-gamma model of one simclr-mpi pretraining step at 1..1024 ranks (bench/SCALING.md).

Usage: analysis/comm_model.py [--net ib100|ib200] [--ppn 16] [--compute-s 0.5] [--measured JSON] [--json FILE]

Per step every rank does, blocking, in this order (src/phases.c, src/ntxent_dist.c):
  all-gather of the L2-normalised projections: n = 2 G D x 4 bytes in total (G = b p, D = 128)
  reduce-scatter of their gradients: the same n
  allreduce of the encoder + head gradients: n = params x 4 bytes (889,088 floats with the
    online probe off: 856,064 encoder + 33,024 head; the classifier's 1,290 only with the probe)
  2 small allreduces (loss/accuracy sums, stop-flag agreement): latency only.
Costs for p ranks, n bytes of result, alpha s per message, beta s per byte, gamma s per byte
reduced (R. Thakur, R. Rabenseifner, W. Gropp, "Optimization of collective communication
operations in MPICH", IJHPCA 19(1), 2005); an MPI picks by message size, the model takes
the cheapest (recursive ones for powers of two only):
  all-gather      ring (p-1)a + (p-1)/p n b;  recursive doubling lg(p) a + (p-1)/p n b
  reduce-scatter  ring (p-1)a + (p-1)/p n (b+g);  recursive halving lg(p) a + (p-1)/p n (b+g)
  allreduce       ring 2(p-1)a + 2(p-1)/p n b + (p-1)/p n g
                  Rabenseifner (halving + doubling) 2 lg(p) a + 2(p-1)/p n b + (p-1)/p n g
                  recursive doubling lg(p) (a + n b + n g)     (small messages)
Cluster: ppn ranks per node, block placement. Ranks within a node: shared memory (a, b).
Across nodes a ring step has one flow per network card (cost a_net + n/p b_net); a step of a
recursive algorithm at partner distance d >= ppn sends ppn flows through each card (b_net x ppn).
Compute per rank: b x t_img (encoder + head, measured) plus the NT-Xent GEMMs, which grow with
the global batch: 3 GEMMs of 2 (2b)(2G) D flops at the encoder's flop rate. No overlap of
compute and communication (the collectives are blocking), so step = compute + comm.
"""
import argparse
import json
import math
import sys

D, PARAMS = 128, 889088
# (alpha s, bandwidth B/s): one node's shared memory; InfiniBand HDR100 (100 Gb/s), HDR (200 Gb/s)
NETS = {"shm": (0.5e-6, 20e9), "ib100": (2e-6, 12.5e9), "ib200": (2e-6, 25e9)}
GAMMA = 1e-10  # s per byte reduced: float sums streaming at 10 GB/s
PS = [2 ** k for k in range(11)]


def enc_flops_per_image(width=128, k=3, embed=128, proj=128):
    """Forward + backward (3x forward) GEMM flops of encoder + head for one image (2 views)."""
    f, s, c = 0, 96, 3
    for _ in range(4):
        s = (s - k) // 2 + 1
        f += 2 * s * s * width * k * k * c
        c = width
    f += 2 * s * s * width * embed + 2 * embed * proj + 2 * proj * proj
    return 2 * 3 * f


class Link:
    g = GAMMA  # s per byte reduced (--gamma)

    def __init__(self, net, ppn, shm=NETS["shm"]):
        self.a_net, self.b_net = net[0], 1.0 / net[1]
        self.a_shm, self.b_shm = shm[0], 1.0 / shm[1]
        self.ppn = ppn

    def ring_step(self, p):  # (alpha, beta) of one ring step: the slowest link
        return (self.a_net, self.b_net) if p > self.ppn else (self.a_shm, self.b_shm)

    def rec_steps(self, p):  # (alpha, beta, distance) of each recursive step
        out, d = [], 1
        while d < p:
            off = d >= self.ppn
            out.append((self.a_net if off else self.a_shm, self.b_net * self.ppn if off else self.b_shm, d))
            d *= 2
        return out


def collective(kind, p, n, L, algo=None):
    """(seconds, algorithm) of one collective; algo=None: the cheapest."""
    if p == 1:  # a local copy
        return 0.0, "local"
    a, b = L.ring_step(p)
    red = 0.0 if kind == "allgather" else (p - 1) / p * n * L.g
    rounds = 2 if kind == "allreduce" else 1
    c = {"ring": rounds * (p - 1) * (a + n / p * b) + red}
    if p & (p - 1) == 0:  # recursive halving/doubling: the step at partner distance d moves n d / p bytes
        c["rabenseifner" if rounds == 2 else "recursive"] = rounds * sum(
            sa + n * d / p * sb for sa, sb, d in L.rec_steps(p)) + red
        if rounds == 2:  # recursive doubling allreduce: all n bytes at every step
            c["recursive"] = sum(sa + n * (sb + L.g) for sa, sb, _ in L.rec_steps(p))
    name = algo if algo in c else min(c, key=c.get)
    return c[name], name


def step(p, b, L, t_img, algos=None):
    """Per-step times of one rank: compute and the collectives (dict); algos freezes the choice."""
    G = b * p
    n_z = 2 * G * D * 4
    rate = enc_flops_per_image() / t_img  # flop/s of the encoder GEMMs
    r, used = {"ranks": p, "per_rank_batch": b, "global_batch": G,
               "compute_s": b * t_img + 3 * 2 * (2 * b) * (2 * G) * D / rate}, {}
    for kind, n in (("allgather", n_z), ("reduce_scatter", n_z), ("allreduce", PARAMS * 4)):
        r[kind + "_s"], used[kind] = collective(kind, p, n, L, (algos or {}).get(kind))
    r["other_s"] = 2 * collective("allreduce", p, 16, L, "recursive")[0]
    r["comm_s"] = sum(r[k + "_s"] for k in ("allgather", "reduce_scatter", "allreduce", "other"))
    r["step_s"] = r["compute_s"] + r["comm_s"]
    r.update(comm_share=r["comm_s"] / r["step_s"], algorithms=used)
    return r


def own_cost(m):
    """The collectives' own cost per step of a measured run: transfer_s (the slowest rank's
    time in collectives, scaling.py from comm_min_s) where recorded, else comm_s (the maximum
    over ranks, which also holds waiting for slower ranks)."""
    return m["transfer_s"] if m.get("transfer_s") is not None else m["comm_s"]


def fit(points, t_img):
    """Least squares of measured comm s per step = A alpha + B beta + C over single-node points
    (A, B, C by differences, the algorithms frozen as chosen with the default parameters)."""
    rows = []
    for m in points:
        p, b, ppn = m["ranks"], m["global_batch"] / m["ranks"], m["ranks"]
        algos = step(p, b, Link(NETS["shm"], ppn), t_img)["algorithms"]
        t = lambda a, bw: step(p, b, Link(NETS["shm"], ppn, shm=(a, bw)), t_img, algos)["comm_s"]  # noqa: E731
        c0 = t(0.0, math.inf)
        rows.append((t(1.0, math.inf) - c0, t(0.0, 1.0) - c0, own_cost(m) - c0))
    s = [[sum(r[i] * r[j] for r in rows) for j in range(3)] for i in range(2)]
    det = s[0][0] * s[1][1] - s[0][1] ** 2
    # two parameters need two independent points: a determinant at rounding level (e.g. all
    # points of one rank count and batch) falls back to the better one-parameter fit
    if det > 1e-9 * s[0][0] * s[1][1]:
        alpha, beta = (s[1][1] * s[0][2] - s[0][1] * s[1][2]) / det, (s[0][0] * s[1][2] - s[0][1] * s[0][2]) / det
        if alpha >= 0 and beta >= 0:
            return alpha, beta
    fits = [(max(0.0, s[i][2] / s[i][i]) if s[i][i] else 0.0) for i in range(2)]  # one parameter only
    err = [sum((r[2] - fits[i] * r[i]) ** 2 for r in rows) for i in range(2)]
    return (fits[0], 0.0) if err[0] <= err[1] else (0.0, fits[1])


def check(path, compute_s):
    """Measured vs predicted comm per step, on the one node of the measurement (shared memory)."""
    try:
        with open(path) as f:
            doc = json.load(f)
        allruns = doc["runs"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        sys.exit("comm_model.py: %s: not a scaling.json of analysis/scaling.py (%s)" % (path, e))
    if doc.get("valid") is False:
        print("WARNING: %s is marked \"valid\": false (the machine was busy, or oversubscribed runs): "
              "the measured times are not a fair check" % path)
    runs = [r for r in allruns if r["ranks"] > 1]
    base = [r for r in allruns if r["mode"] == "weak" and r["ranks"] == 1]
    t_img = base[0]["compute_s"] / base[0]["per_rank_batch"] if base else compute_s / 32
    good = [r for r in runs if not r.get("oversubscribed")] or runs
    if not runs:
        sys.exit("comm_model.py: %s: no multi-rank run" % path)
    alpha, beta = fit(good, t_img)
    fitted = (alpha, 1.0 / beta if beta > 0 else math.inf)
    print("Measured vs model, comm per step on one node; t_img %.4f s %s; fit over %d points%s: alpha %.2f us, "
          "%s" % (t_img, "(weak 1-rank run)" if base else "(--compute-s)", len(good),
                  " (ALL OVERSUBSCRIBED)" if good is runs and runs[0].get("oversubscribed") else "",
                  alpha * 1e6, "%.2f GB/s" % (fitted[1] / 1e9) if beta > 0 else "beta 0"))
    kinds = ("allgather", "reduce_scatter", "allreduce", "other", "comm")
    if all(r.get("transfer_s") is not None for r in runs):
        print("Fitted to the collectives' own cost (the slowest rank's time in collectives); the per-kind "
              "columns and 'comm' are maxima over ranks and include waiting for slower ranks ('wait').")
    print("%-6s %5s %6s" % ("mode", "ranks", "G") + "".join(" %17s" % k for k in kinds)
          + " %17s %9s %9s" % ("own cost", "wait", "fit"))
    out = []
    for r in runs:
        p, b = r["ranks"], r["global_batch"] / r["ranks"]
        d = step(p, b, Link(NETS["shm"], p), t_img)
        f = step(p, b, Link(NETS["shm"], p, shm=fitted), t_img, d["algorithms"])
        meas = {k: r[k + "_s" if k != "other" else "other_comm_s"] for k in kinds}
        cells = "".join(" %8.3f/%8.3f" % (1e3 * meas[k], 1e3 * d[k + "_s"]) for k in kinds)
        own, wait = own_cost(r), r.get("wait_s")
        print("%-6s %5d %6d%s %8.3f/%8.3f %9s %9.3f%s" % (
            r["mode"], r["ranks"], r["global_batch"], cells, 1e3 * own, 1e3 * d["comm_s"],
            "-" if wait is None else "%.3f" % (1e3 * wait), 1e3 * f["comm_s"],
            "  oversubscribed" if r.get("oversubscribed") else ""))
        out.append({"mode": r["mode"], "ranks": r["ranks"], "global_batch": r["global_batch"], "measured": meas,
                    "measured_own_cost_s": own, "measured_wait_s": wait,
                    "model": {k: d[k + "_s"] for k in kinds}, "model_fit_comm_s": f["comm_s"]})
    print("(ms per step, measured/model; 'fit': the total with the fitted alpha and bandwidth)\n")
    return {"t_img_s": t_img, "fit_alpha_s": alpha, "fit_bandwidth_Bps": fitted[1], "points": out}, t_img


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--net", choices=[k for k in NETS if k != "shm"], action="append",
                    help="network between nodes (repeatable; default ib100 and ib200)")
    ap.add_argument("--ppn", type=int, default=16, help="ranks per node (default 16)")
    ap.add_argument("--compute-s", type=float, default=0.5, help="compute s per step at per-rank batch 32 "
                    "(default 0.5; --measured: from the weak 1-rank run)")
    ap.add_argument("--gamma", type=float, default=GAMMA, help="s per byte reduced (default 1e-10)")
    ap.add_argument("--measured", help="analysis/scaling.py --json output to check the model against")
    ap.add_argument("--json", help="write predictions (and the check) here")
    a = ap.parse_args()
    Link.g = a.gamma
    t_img, doc = a.compute_s / 32, {"params_floats": PARAMS, "proj_dim": D, "gamma_s_per_byte": a.gamma,
                                    "ppn": a.ppn, "nets": NETS, "predictions": []}
    if a.measured:
        doc["check"], t_img = check(a.measured, a.compute_s)
    for net in a.net or ["ib100", "ib200"]:
        L = Link(NETS[net], a.ppn)
        print("\n%s between nodes (alpha %.1f us, %.1f GB/s), shared memory within a node of %d ranks; "
              "t_img %.4f s" % (net, NETS[net][0] * 1e6, NETS[net][1] / 1e9, a.ppn, t_img))
        print("%5s %7s %9s %9s %9s %9s %9s %8s %7s | %7s %7s %7s %7s" % (
            "ranks", "G", "compute", "allgath", "red-scat", "allred", "step s", "comm %", "eff",
            "comm16", "eff16", "comm64", "eff64"))
        one = {b: step(1, b, L, t_img)["step_s"] for b in (16, 32, 64)}
        for p in PS:
            rs = {b: step(p, b, L, t_img) for b in (16, 32, 64)}
            for b, r in rs.items():
                doc["predictions"].append(dict(r, efficiency=one[b] / r["step_s"], net=net))
            r, r16, r64 = (dict(rs[b], efficiency=one[b] / rs[b]["step_s"]) for b in (32, 16, 64))
            print("%5d %7d %9.4f %9.5f %9.5f %9.5f %9.4f %7.1f%% %6.1f%% | %6.1f%% %6.1f%% %6.1f%% %6.1f%%" % (
                p, r["global_batch"], r["compute_s"], r["allgather_s"], r["reduce_scatter_s"], r["allreduce_s"],
                r["step_s"], 100 * r["comm_share"], 100 * r["efficiency"], 100 * r16["comm_share"],
                100 * r16["efficiency"], 100 * r64["comm_share"], 100 * r64["efficiency"]))
    if a.json:
        with open(a.json, "w") as f:
            f.write(json.dumps(doc, indent=1) + "\n")
        print("wrote " + a.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
