#!/usr/bin/python3
"""simclr-mpi benchmark: `make bench` (see bench/README.md).

For each rank x thread layout (--layouts, default 2x1,1x2), all in one run:
  * build/simclr pretrain / finetune / eval on the bundled sample (imported once into
    BUILD/bench-data), images/s read from metrics.jsonl / eval.json (median over epochs,
    the first epoch skipped as warm-up), share of step time reading + augmenting (data_s),
    in collectives (comm_s), peak resident memory per rank (GNU time around each rank);
  * BUILD/gemm_bound on the same ranks x threads: the GEMM-only time of exactly the GEMMs
    of one step => gemm_bound_images_per_s, GEMM FLOPs per image, large-sgemm GFLOP/s;
  * bench/torch_twin.py: the same step in PyTorch fp32 on ranks x threads threads.
Prints a table and writes OUT_DIR/bench-latest.json and OUT_DIR/bench-YYYYMMDD-HHMMSS.json.
"""
import argparse
import datetime
import json
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The PyTorch twin allocates a fresh tensor for every operation; with glibc malloc each large
# one is a new mmap whose first touch faults every page, which on some VMs costs more than the
# arithmetic (2-core Zen 5 VM, 2026-12-01: torch.relu of a (256,128,47,47) tensor 469 ms, 10.6 ms
# with jemalloc keeping its memory; the twin 14 -> 153 images/s). simclr allocates its
# activations once, so the fair twin reuses memory too: jemalloc (libjemalloc2) when installed.
JEMALLOC = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"
JEMALLOC_CONF = "dirty_decay_ms:-1,muzzy_decay_ms:-1,retain:true"


def die(msg):
    print(f"bench: error: {msg}", file=sys.stderr)
    sys.exit(1)


def run(cmd, log_path, env=None, timeout=None):
    """Runs cmd (list) from ROOT, stdout+stderr to log_path; dies with the log tail on failure."""
    with open(log_path, "a") as log:
        log.write("$ " + " ".join(shlex.quote(c) for c in cmd) + "\n")
        log.flush()
        t0 = time.monotonic()
        p = subprocess.run(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env, timeout=timeout)
        log.write(f"# exit {p.returncode} after {time.monotonic() - t0:.1f} s\n")
    if p.returncode != 0:
        with open(log_path) as f:
            tail = f.read()[-3000:]
        die(f"command failed (exit {p.returncode}): {' '.join(cmd)}\n--- {log_path} (tail) ---\n{tail}")


def capture(cmd, log_path, env=None):
    """Runs cmd, returns its stdout lines that parse as JSON objects (stderr to the log)."""
    with open(log_path, "a") as log:
        log.write("$ " + " ".join(shlex.quote(c) for c in cmd) + "\n")
        log.flush()
        p = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=log, env=env, text=True)
        log.write(p.stdout)
    if p.returncode != 0:
        die(f"command failed (exit {p.returncode}): {' '.join(cmd)} (log: {log_path})")
    out = []
    for line in p.stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            out.append(json.loads(line))
    if not out:
        die(f"no JSON output from {' '.join(cmd)}")
    return out


def sh_out(cmd):
    try:
        return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT).stdout
    except OSError:
        return ""


def hardware():
    info = {"lscpu": {}}
    for line in sh_out(["lscpu"]).splitlines():
        k, _, v = line.partition(":")
        info["lscpu"][k.strip()] = v.strip()
    ls = info["lscpu"]
    info["model_name"] = ls.get("Model name", platform.processor())
    cpus = os.cpu_count() or 1
    try:
        cores = int(ls.get("Core(s) per socket", "0")) * int(ls.get("Socket(s)", "1"))
    except ValueError:
        cores = 0
    info["logical_cpus"] = cpus
    info["cores"] = cores or cpus
    info["threads_per_core"] = ls.get("Thread(s) per core", "")
    info["hypervisor"] = ls.get("Hypervisor vendor", "")
    info["flags_avx2"] = "avx2" in ls.get("Flags", "").split()
    info["flags_avx512f"] = "avx512f" in ls.get("Flags", "").split()
    info["lscpu"] = {k: v for k, v in ls.items() if k != "Flags"}
    try:
        with open("/proc/meminfo") as f:
            info["mem_total_kib"] = int(f.readline().split()[1])
    except (OSError, ValueError, IndexError):
        pass
    info["kernel"] = platform.release()
    return info


def resolved_config(run_dir):
    """Flat {"model.width": "128", ...} from RUN_DIR/config.resolved.cfg (libconfig as written by simclr)."""
    vals, stack = {}, []
    with open(os.path.join(run_dir, "config.resolved.cfg")) as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            m = re.fullmatch(r"(\w+)\s*:", line)
            if m:
                stack.append(m.group(1))
            elif line.startswith("}"):
                stack.pop()
            else:
                m = re.fullmatch(r"(\w+)\s*=\s*(.*?);", line)
                if m:
                    v = m.group(2).strip('"')
                    vals[".".join(stack + [m.group(1)])] = re.sub(r"(?<=\d)L$", "", v)
    return vals


def cpu_busy_share(seconds=2.0):
    """Share of all CPUs busy (not idle / iowait) over `seconds`, from /proc/stat; None if unreadable."""
    def snap():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return v[3] + (v[4] if len(v) > 4 else 0), sum(v)
    try:
        i0, t0 = snap()
        time.sleep(seconds)
        i1, t1 = snap()
    except (OSError, ValueError, IndexError):
        return None
    return 1.0 - (i1 - i0) / (t1 - t0) if t1 > t0 else None


def median(xs):
    return statistics.median(xs) if xs else None


def parse_layout(s):
    m = re.fullmatch(r"(\d+)x(\d+)", s.strip())
    if not m or int(m.group(1)) < 1 or int(m.group(2)) < 1:
        die(f"--layouts: '{s}' is not RANKSxTHREADS (e.g. 1x2)")
    return int(m.group(1)), int(m.group(2))


class Bench:
    def __init__(self, a):
        self.a = a
        self.build = a.build
        self.simclr = os.path.join(self.build, "simclr")
        self.gemm_bound = os.path.join(self.build, "gemm_bound")
        self.data = a.data_dir or os.path.join(self.build, "bench-data")
        self.work = tempfile.mkdtemp(prefix="bench-", dir=os.path.join(ROOT, self.build))
        self.log = os.path.join(self.work, "bench.log")
        self.torch_cache = {}
        self.root_user = hasattr(os, "geteuid") and os.geteuid() == 0
        self.have_time = os.access("/usr/bin/time", os.X_OK)

    # ---- data --------------------------------------------------------------------------
    def import_sample(self):
        need = ["train_X.bin", "train_y.bin", "unlabeled_X.bin"]
        if all(os.path.exists(os.path.join(ROOT, self.data, f)) for f in need):
            return
        if self.a.data_dir:
            die(f"--data-dir {self.a.data_dir}: missing one of {need}")
        print(f"bench: importing data/sample into {self.data}", flush=True)
        run([self.simclr, "import", "data/sample/train", self.data, "--split", "train", "--labels-from-folders"], self.log)
        run([self.simclr, "import", "data/sample/unlabeled", self.data, "--split", "unlabeled"], self.log)

    # ---- launching ---------------------------------------------------------------------
    def launcher(self, ranks):
        if ranks == 1:
            return []
        cmd = ["mpirun"]
        if self.root_user:
            cmd.append("--allow-run-as-root")
        if ranks > (os.cpu_count() or 1):
            cmd.append("--oversubscribe")
        return cmd + ["-np", str(ranks)] + shlex.split(self.a.mpirun_args)

    def with_rss(self, cmd, rss_dir):
        """Wraps one rank's command in GNU time writing its peak RSS (KiB) to rss_dir/rss-RANK."""
        if not self.have_time:
            return cmd
        script = 'exec /usr/bin/time -f %M -o "$0/rss-${OMPI_COMM_WORLD_RANK:-0}" "$@"'
        return ["sh", "-c", script, rss_dir] + cmd

    @staticmethod
    def read_rss(rss_dir, ranks):
        out = []
        for r in range(ranks):
            try:
                with open(os.path.join(rss_dir, f"rss-{r}")) as f:
                    out.append(round(int(f.read().strip().splitlines()[-1]) / 1024.0, 1))
            except (OSError, ValueError, IndexError):
                out.append(None)
        return out

    def simclr_phase(self, ranks, threads, phase, cfg, run_dir, sets):
        os.makedirs(run_dir, exist_ok=True)
        cmd = [self.simclr, phase, cfg, "--set", f"run_dir={run_dir}", "--set", f"data.dir={self.data}",
               "--set", f"run.threads={threads}", "--set", "resume=none"]
        for s in sets:
            cmd += ["--set", s]
        full = self.launcher(ranks) + self.with_rss(cmd, run_dir)
        t0 = time.monotonic()
        run(full, self.log)
        wall = time.monotonic() - t0
        return {"command": " ".join(shlex.quote(c) for c in self.launcher(ranks) + cmd), "wall_s": round(wall, 3),
                "max_rss_mib_per_rank": self.read_rss(run_dir, ranks)}

    @staticmethod
    def epochs_of(run_dir, phase):
        rows = []
        with open(os.path.join(run_dir, "metrics.jsonl")) as f:
            for line in f:
                line = line.strip()
                if line:
                    d = json.loads(line)
                    if d.get("phase") == phase:
                        rows.append(d)
        if not rows:
            die(f"{run_dir}/metrics.jsonl: no {phase} epochs")
        measured = rows[1:] if len(rows) > 1 else rows  # epoch 1: warm-up (page faults)
        return rows, measured

    def summarize_training(self, run_dir, phase, batch, ranks, views_per_image):
        rows, m = self.epochs_of(run_dir, phase)
        for k in ("data_s", "comm_s", "max_rss_mib"):
            if k not in m[0]:
                die(f"{run_dir}/metrics.jsonl has no '{k}': build/simclr is older than the benchmark "
                    "(rebuild with make)")
        ips = [d["images_per_s"] for d in m]
        secs = [d["seconds"] for d in m]
        data = [d["data_s"] for d in m]
        comm = [d["comm_s"] for d in m]
        steps = [max(1, round(d["images_per_s"] * d["seconds"] / batch)) for d in m]
        rank0_images = batch * 1 // ranks  # shard_range(): rank 0's share of each global batch
        aug = [views_per_image * rank0_images * s / d for s, d in zip(steps, data) if d > 0]
        compute_ips = [batch * s / (sec - d) for s, sec, d in zip(steps, secs, data) if sec - d > 0]
        step_s = [sec / s for sec, s in zip(secs, steps)]
        return {
            "epochs_total": len(rows), "epochs_measured": len(m), "warmup_epoch_skipped": len(rows) > 1,
            "steps_per_epoch": steps[0],
            "images_per_s": median(ips), "images_per_s_per_epoch": ips,
            "step_s": median(step_s),
            "data_share": median([d / s for d, s in zip(data, secs)]),
            "comm_share": median([c / s for c, s in zip(comm, secs)]),
            "augment_views_per_s_rank0": median(aug),
            "images_per_s_excluding_data": median(compute_ips),
            "max_rss_mib_rank0_metrics": max(d["max_rss_mib"] for d in rows),
            "first_epoch_images_per_s": rows[0]["images_per_s"],
        }

    # ---- GEMM bound and PyTorch --------------------------------------------------------
    def set_model(self, c):
        """The model, workspace and optimizer of the C run, passed on to gemm_bound and the twin."""
        def get(k):
            if k not in c:
                die(f"config.resolved.cfg has no {k}")
            return c[k]
        model = ["--conv-layers", get("model.conv_layers"), "--width", get("model.width"), "--kernel",
                 get("model.kernel"), "--embed", get("model.embed_dim"), "--proj", get("model.proj_dim"),
                 "--classes", get("data.num_classes")]
        twin_only = ["--batchnorm", get("model.batchnorm")]  # no GEMM of its own (conv bias off)
        self.gemm_model = model + ["--workspace-mb", get("run.workspace_mb")]
        self.torch_model = model + twin_only + ["--temperature", get("pretrain.temperature"), "--lr", get("train.lr"),
                                    "--beta1", get("train.beta1"), "--beta2", get("train.beta2"),
                                    "--eps", get("train.eps")]
        self.model_cfg = {k: v for k, v in c.items() if k.startswith("model.") or k in (
            "run.workspace_mb", "data.num_classes", "pretrain.temperature", "train.lr", "train.eps")}

    def gemm(self, ranks, threads, mode, batch, sgemm_n):
        per_rank = -(-batch // ranks)  # the largest shard bounds the step
        cmd = [self.gemm_bound, "--mode", mode, "--images", str(per_rank), "--global-images", str(batch),
               "--threads", str(threads), "--reps", str(self.a.reps), "--sgemm-n", str(sgemm_n)] + self.gemm_model
        res = capture(self.launcher(ranks) + cmd, self.log)
        if len(res) != ranks:
            die(f"gemm_bound: expected {ranks} JSON lines, got {len(res)}")
        t = max(r["gemm_seconds_per_step"] for r in res)  # already the slowest rank's (MPI_Allreduce MAX)
        return {
            "command": " ".join(self.launcher(ranks) + cmd),
            "gemm_bound_images_per_s": batch / t,
            "gemm_seconds_per_step": t,
            "gemm_gflop_per_image": res[0]["gemm_gflop_per_image"],
            "gemm_gflops_achieved_in_bound": sum(r["gemm_gflops"] for r in res),
            "sgemm_peak_gflops": res[0]["sgemm_peak_gflops_all_ranks"] if sgemm_n else None,
            "sgemm_n": sgemm_n, "per_rank": res,
        }

    def torch(self, mode, batch, threads, blis_arch_id):
        """Debian's PyTorch does its BLAS through the same BLIS (the libblas.so.3 alternative), so
        the twin runs with the kernels simclr's gemm_init chose (BLIS_ARCH_TYPE = blis_arch_id,
        from gemm_bound): on a CPU BLIS 0.9 does not know it would otherwise get the generic ones."""
        key = (mode, batch, threads, tuple(self.torch_model))
        if key not in self.torch_cache:
            cmd = ["/usr/bin/python3", "bench/torch_twin.py", "--mode", mode, "--batch", str(batch), "--threads",
                   str(threads), "--reps", str(self.a.reps), "--warmup", str(self.a.torch_warmup)] + self.torch_model
            env = dict(os.environ, BLIS_ARCH_TYPE=str(blis_arch_id))
            prefix = f"BLIS_ARCH_TYPE={blis_arch_id} "
            jemalloc = os.path.exists(JEMALLOC)  # see JEMALLOC
            if jemalloc:
                env.update(LD_PRELOAD=JEMALLOC, MALLOC_CONF=JEMALLOC_CONF)
                prefix += f"LD_PRELOAD={JEMALLOC} MALLOC_CONF={JEMALLOC_CONF} "
            r = capture(cmd, self.log, env=env)[-1]
            r["command"] = prefix + " ".join(cmd)
            r["allocator"] = "jemalloc (memory kept)" if jemalloc else "glibc malloc"
            self.torch_cache[key] = r
        return self.torch_cache[key]

    # ---- one layout ---------------------------------------------------------------------
    def layout(self, ranks, threads):
        a, B, FB = self.a, self.a.batch, self.a.finetune_batch
        name = f"{ranks}x{threads}"
        d = os.path.join(self.work, name)
        print(f"bench: layout {name} ({ranks} rank(s) x {threads} thread(s)): pretrain", flush=True)
        common = ["data.eval_per_class=5"] + a.extra_set
        pre_dir = os.path.join(d, "pretrain")
        pre_run = self.simclr_phase(ranks, threads, "pretrain", "conf/pretrain.cfg", pre_dir, common + [
            f"train.batch={B}", "pretrain.probe_batch=0", f"train.epochs={a.epochs}", "run.checkpoint_every=1000"]
            + (["data.unlabeled_split="] if a.quick else []))
        pre = self.summarize_training(pre_dir, "pretrain", B, ranks, 2)
        self.set_model(resolved_config(pre_dir))

        print(f"bench: layout {name}: finetune", flush=True)
        ft_dir = os.path.join(d, "finetune")
        ft_run = self.simclr_phase(ranks, threads, "finetune", "conf/finetune.cfg", ft_dir, common + [
            f"checkpoint={pre_dir}/final.h5", f"train.batch={FB}", f"train.epochs={a.epochs}",
            "run.checkpoint_every=1000"])
        ft = self.summarize_training(ft_dir, "finetune", FB, ranks, 1)

        print(f"bench: layout {name}: eval x{a.reps}", flush=True)
        ev, ev_runs = [], []
        for i in range(a.reps):
            ev_dir = os.path.join(d, f"eval{i}")
            ev_runs.append(self.simclr_phase(ranks, threads, "eval", "conf/eval.cfg", ev_dir, common + [
                f"checkpoint={ft_dir}/final.h5", f"data.eval_split={a.eval_split}", f"train.batch={B}"]))
            with open(os.path.join(ev_dir, "eval.json")) as f:
                e = json.load(f)
            if "images_per_s" not in e:
                die(f"{ev_dir}/eval.json has no images_per_s: build/simclr is older than the benchmark")
            ev.append(e)

        print(f"bench: layout {name}: GEMM bound", flush=True)
        g = self.gemm(ranks, threads, "pretrain", B, a.sgemm_n)
        gf = self.gemm(ranks, threads, "finetune", FB, 0)

        tt = ranks * threads
        print(f"bench: layout {name}: PyTorch fp32 twin, {tt} thread(s)", flush=True)
        arch = g["per_rank"][0]["blis_arch_id"]
        tp = self.torch("pretrain", B, tt, arch)
        tf = self.torch("finetune", FB, tt, arch)
        te = self.torch("eval", B, tt, arch)

        pre_gflops = g["gemm_gflop_per_image"] * pre["images_per_s"]
        rss = [max(x for x in col if x is not None) if any(x is not None for x in col) else None
               for col in zip(pre_run["max_rss_mib_per_rank"], ft_run["max_rss_mib_per_rank"],
                              *[r["max_rss_mib_per_rank"] for r in ev_runs])]
        return {
            "ranks": ranks, "threads_per_rank": threads, "total_threads": tt, "model": self.model_cfg,
            "pretrain_images_per_s": pre["images_per_s"],
            "pretrain_step_s": pre["step_s"],
            "pretrain_gflops": pre_gflops,
            "pretrain_images_per_s_excluding_data": pre["images_per_s_excluding_data"],
            "pretrain_data_share": pre["data_share"],
            "pretrain_comm_share": pre["comm_share"],
            "augment_views_per_s_per_rank": pre["augment_views_per_s_rank0"],
            "finetune_images_per_s": ft["images_per_s"],
            "finetune_data_share": ft["data_share"],
            "eval_images_per_s": median([e["images_per_s"] for e in ev]),
            "eval_images": ev[0].get("n"),
            "gemm_bound_images_per_s": g["gemm_bound_images_per_s"],
            "gemm_gflop_per_image": g["gemm_gflop_per_image"],
            "sgemm_peak_gflops": g["sgemm_peak_gflops"],
            "sgemm_bound_images_per_s": (g["sgemm_peak_gflops"] / g["gemm_gflop_per_image"]
                                         if g["sgemm_peak_gflops"] else None),
            # the "fraction of the sgemm bound": achieved GEMM GFLOP/s / large-sgemm GFLOP/s
            "fraction_of_gemm_bound": pre_gflops / g["sgemm_peak_gflops"] if g["sgemm_peak_gflops"] else None,
            "fraction_of_sgemm_peak": pre_gflops / g["sgemm_peak_gflops"] if g["sgemm_peak_gflops"] else None,
            "fraction_of_step_gemm_replay": pre["images_per_s"] / g["gemm_bound_images_per_s"],
            "finetune_gemm_bound_images_per_s": gf["gemm_bound_images_per_s"],
            "finetune_fraction_of_step_gemm_replay": ft["images_per_s"] / gf["gemm_bound_images_per_s"],
            "pytorch_fp32_images_per_s": tp["images_per_s"],
            "speedup_vs_pytorch": pre["images_per_s"] / tp["images_per_s"],
            "speedup_vs_pytorch_excluding_data": (pre["images_per_s_excluding_data"] / tp["images_per_s"]
                                                  if pre["images_per_s_excluding_data"] else None),
            "pytorch_fp32_finetune_images_per_s": tf["images_per_s"],
            "finetune_speedup_vs_pytorch": ft["images_per_s"] / tf["images_per_s"],
            "pytorch_fp32_eval_images_per_s": te["images_per_s"],
            "eval_speedup_vs_pytorch": median([e["images_per_s"] for e in ev]) / te["images_per_s"],
            "max_rss_mib_per_rank": rss,
            "pytorch_max_rss_mib": tp["max_rss_mib"],
            "detail": {"pretrain": {**pre, **pre_run}, "finetune": {**ft, **ft_run},
                       "eval": {"runs": ev_runs, "images_per_s": [e["images_per_s"] for e in ev],
                                "seconds": [e.get("seconds") for e in ev]},
                       "gemm_bound_pretrain": g, "gemm_bound_finetune": gf,
                       "pytorch": {"pretrain": tp, "finetune": tf, "eval": te}},
        }


ROWS = [
    ("pretrain_images_per_s", "pretrain img/s (2 views, incl. data)", "{:.1f}"),
    ("pretrain_step_s", "pretrain step s", "{:.3f}"),
    ("pretrain_images_per_s_excluding_data", "pretrain img/s excl. read+augment", "{:.1f}"),
    ("pretrain_gflops", "pretrain GEMM GFLOP/s achieved", "{:.1f}"),
    ("sgemm_peak_gflops", "sgemm peak GFLOP/s", "{:.1f}"),
    ("sgemm_bound_images_per_s", "sgemm bound img/s (FLOPs at peak)", "{:.1f}"),
    ("fraction_of_gemm_bound", "fraction of sgemm bound", "{:.2f}"),
    ("gemm_bound_images_per_s", "step GEMM replay img/s", "{:.1f}"),
    ("fraction_of_step_gemm_replay", "fraction of step GEMM replay", "{:.2f}"),
    ("pytorch_fp32_images_per_s", "PyTorch fp32 pretrain img/s", "{:.1f}"),
    ("speedup_vs_pytorch", "speedup vs PyTorch", "{:.2f}"),
    ("pretrain_data_share", "share of step in read+augment", "{:.1%}"),
    ("pretrain_comm_share", "share of step in collectives", "{:.1%}"),
    ("augment_views_per_s_per_rank", "augment views/s per rank", "{:.0f}"),
    ("finetune_images_per_s", "finetune img/s", "{:.1f}"),
    ("pytorch_fp32_finetune_images_per_s", "PyTorch fp32 finetune img/s", "{:.1f}"),
    ("eval_images_per_s", "eval img/s", "{:.1f}"),
    ("pytorch_fp32_eval_images_per_s", "PyTorch fp32 eval img/s", "{:.1f}"),
    ("max_rss_mib_per_rank", "peak RSS MiB per rank", None),
]


def fmt(v, f):
    if v is None:
        return "-"
    if f is None:
        return "/".join("-" if x is None else f"{x:.0f}" for x in v) if isinstance(v, list) else str(v)
    return f.format(v)


def table(layouts):
    names = list(layouts)
    w0 = max(len(r[1]) for r in ROWS)
    cols = [max(12, len(n)) for n in names]
    lines = ["  ".join(["metric".ljust(w0)] + [n.rjust(c) for n, c in zip(names, cols)])]
    lines.append("-" * len(lines[0]))
    for key, label, f in ROWS:
        lines.append("  ".join([label.ljust(w0)] + [fmt(layouts[n].get(key), f).rjust(c) for n, c in zip(names, cols)]))
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description="simclr-mpi benchmark (bench/README.md)")
    ap.add_argument("--build", default="build", help="build folder with simclr and gemm_bound (default build)")
    ap.add_argument("--batch", type=int, default=128, help="pretrain global batch in images (2x views; default 128)")
    ap.add_argument("--finetune-batch", type=int, default=None, help="finetune global batch (default: --batch)")
    ap.add_argument("--epochs", type=int, default=4, help="epochs per training phase; epoch 1 is skipped (default 4)")
    ap.add_argument("--reps", type=int, default=5, help="repetitions of eval runs, GEMM replays, PyTorch steps")
    ap.add_argument("--torch-warmup", type=int, default=2, help="PyTorch steps before timing (default 2)")
    ap.add_argument("--layouts", default="2x1,1x2", help="RANKSxTHREADS list (default 2x1,1x2: the default layout first = headline)")
    ap.add_argument("--sgemm-n", type=int, default=2048, help="square sgemm size for the peak (default 2048)")
    ap.add_argument("--eval-split", default="train", help="split evaluated by the eval timing (default train)")
    ap.add_argument("--data-dir", default=None, help="STL-10 layout to use instead of the imported sample")
    ap.add_argument("--mpirun-args", default="", help="extra mpirun options (quoted string)")
    ap.add_argument("--set", dest="extra_set", action="append", default=[], help="extra key=value for every phase")
    ap.add_argument("--out-dir", default=None, help="where the JSON goes (default docs/results; --quick: BUILD/bench-quick)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary run folders")
    ap.add_argument("--quick", action="store_true",
                    help="smoke test: batch 32, 2 epochs on the 200 labeled images only, 2 reps, sgemm 512")
    a = ap.parse_args()
    if a.quick:
        a.batch, a.epochs, a.reps, a.sgemm_n, a.torch_warmup = 32, 2, 2, 512, 1
    if a.finetune_batch is None:
        a.finetune_batch = a.batch
    if a.batch < 1 or a.finetune_batch < 1 or a.epochs < 1 or a.reps < 1 or a.sgemm_n < 0:
        die("--batch, --finetune-batch, --epochs, --reps must be >= 1")
    out_dir = a.out_dir or (os.path.join(a.build, "bench-quick") if a.quick else os.path.join("docs", "results"))
    layouts = [parse_layout(s) for s in a.layouts.split(",") if s.strip()]
    if not layouts:
        die("--layouts is empty")
    for exe in ("simclr", "gemm_bound"):
        if not os.access(os.path.join(ROOT, a.build, exe), os.X_OK):
            die(f"{a.build}/{exe} missing: run `make bench` (or make {a.build}/{exe})")
    if any(r > 1 for r, _ in layouts) and not shutil.which("mpirun"):
        die("mpirun not found (needed for layouts with more than one rank)")

    started = datetime.datetime.now()
    load0 = os.getloadavg()
    cpus = os.cpu_count() or 1
    busy0 = cpu_busy_share()
    busy = busy0 > 0.1 if busy0 is not None else load0[0] > 0.25 * cpus
    b = Bench(a)
    print(f"bench: work folder {b.work}; log {b.log}", flush=True)
    if busy:
        print(f"bench: warning: {'-' if busy0 is None else f'{busy0:.0%}'} of the CPUs busy before starting (load "
              f"average {load0[0]:.2f} on {cpus} CPUs): another job is running; the numbers will be low",
              file=sys.stderr, flush=True)
    b.import_sample()
    results = {}
    for ranks, threads in layouts:
        results[f"{ranks}x{threads}"] = b.layout(ranks, threads)
    load1 = os.getloadavg()
    finished = datetime.datetime.now()

    suspect = []  # physically impossible ratios: the run was disturbed (another job, frequency changes)
    for name, r in results.items():
        for k in ("fraction_of_gemm_bound", "fraction_of_step_gemm_replay", "finetune_fraction_of_step_gemm_replay"):
            if r.get(k) is not None and r[k] > 1.0:
                suspect.append(f"{name}: {k} = {r[k]:.2f} > 1")
    head_name = next(iter(results))
    head = results[head_name]
    any_torch = next(iter(b.torch_cache.values()))
    gb = head["detail"]["gemm_bound_pretrain"]["per_rank"][0]
    git_rev = sh_out(["git", "rev-parse", "--short", "HEAD"]).strip()
    git_dirty = bool(sh_out(["git", "status", "--porcelain", "--untracked-files=no"]).strip())
    hw = hardware()
    doc = {
        "schema": "simclr-mpi-bench/1",
        "timestamp": started.isoformat(timespec="seconds"),
        "duration_s": round((finished - started).total_seconds(), 1),
        "command": " ".join(shlex.quote(x) for x in [sys.argv[0]] + sys.argv[1:]),
        "make_target": "make bench",
        "quick": a.quick,
        "headline_layout": head_name,
        "pretrain_images_per_s": head["pretrain_images_per_s"],
        "pytorch_fp32_images_per_s": head["pytorch_fp32_images_per_s"],
        "speedup_vs_pytorch": head["speedup_vs_pytorch"],
        "fraction_of_gemm_bound": head["fraction_of_gemm_bound"],
        "sgemm_bound_images_per_s": head["sgemm_bound_images_per_s"],
        "fraction_of_step_gemm_replay": head["fraction_of_step_gemm_replay"],
        "gemm_bound_images_per_s": head["gemm_bound_images_per_s"],
        "pretrain_gflops": head["pretrain_gflops"],
        "sgemm_peak_gflops": head["sgemm_peak_gflops"],
        "fraction_of_sgemm_peak": head["fraction_of_sgemm_peak"],
        "finetune_images_per_s": head["finetune_images_per_s"],
        "eval_images_per_s": head["eval_images_per_s"],
        "augment_views_per_s_per_rank": head["augment_views_per_s_per_rank"],
        "pretrain_data_share": head["pretrain_data_share"],
        "max_rss_mib_per_rank": head["max_rss_mib_per_rank"],
        "hardware": {"model_name": hw["model_name"], "cores": hw["cores"], "logical_cpus": hw["logical_cpus"],
                     "threads_per_core": hw["threads_per_core"], "hypervisor": hw["hypervisor"],
                     "avx2": hw["flags_avx2"], "avx512f": hw["flags_avx512f"],
                     "mem_total_kib": hw.get("mem_total_kib"), "kernel": hw["kernel"], "lscpu": hw["lscpu"]},
        "load_average_before": load0, "load_average_after": load1,
        "cpu_busy_share_before": busy0,
        "machine_busy": busy,
        "suspect": suspect,
        "valid": not (busy or suspect or a.quick),
        "settings": {"batch_images": a.batch, "pretrain_views_per_step": 2 * a.batch,
                     "finetune_batch_images": a.finetune_batch, "epochs": a.epochs, "reps": a.reps,
                     "torch_warmup_steps": a.torch_warmup, "sgemm_n": a.sgemm_n, "eval_split": a.eval_split,
                     "data_dir": b.data, "layouts": list(results), "extra_set": a.extra_set,
                     "pretrain_images": "data/sample: 300 unlabeled + 200 labeled (5 per class held out)"
                                        if not a.quick else "quick: 200 labeled images only (data.unlabeled_split=\"\")"},
        "software": {"git_rev": git_rev, "git_dirty": git_dirty,
                     "blis": f"{gb['blis_version']} {gb['blis_arch']} openmp={gb['blis_openmp']}",
                     "torch": any_torch.get("torch_version"),
                     "mpirun": (sh_out(["mpirun", "--version"]).splitlines() or [""])[0],
                     "compiler": (sh_out(["mpicc", "--version"]).splitlines() or [""])[0],
                     "python": platform.python_version()},
        "notes": [
            "PyTorch twin: with jemalloc keeping freed memory (LD_PRELOAD, MALLOC_CONF) when libjemalloc2 is "
            "installed, so that its per-op tensors do not fault in fresh pages (see bench.py JEMALLOC)",
            "PyTorch twin: run with BLIS_ARCH_TYPE set to the BLIS kernels simclr uses (gemm_bound's blis_arch_id): "
            "Debian's PyTorch does its BLAS through the same BLIS (libblas.so.3 alternative)",
            "pretrain/finetune img/s: median over epochs 2..E of metrics.jsonl images_per_s (epoch 1 = warm-up), "
            "step loop only (no checkpoint), reading + augmentation included",
            "PyTorch twin: same model, batch, loss, Adam, fp32, ranks x threads threads in one process; "
            "random inputs, augmentation EXCLUDED (compare with *_excluding_data for compute only)",
            "fraction_of_gemm_bound (= fraction_of_sgemm_peak): achieved GEMM GFLOP/s of the step / GFLOP/s of "
            "one large square sgemm on the same threads (the sgemm bound: sgemm_bound_images_per_s)",
            "step GEMM replay (gemm_bound_images_per_s): the same gemm() calls as one step (same shapes, workspace "
            "chunking, threads, ranks running concurrently), images / GEMM-only time; "
            "fraction_of_step_gemm_replay = pretrain img/s / that",
            "data_share, augment views/s: rank 0's data_s (reading + augmenting its shard) over the epoch time",
            "max_rss_mib_per_rank: GNU time %M around each rank, max over pretrain/finetune/eval runs",
        ],
        "layouts": results,
    }
    print()
    print(f"simclr-mpi bench {doc['timestamp']}: {hw['model_name']}, {hw['cores']} cores; batch {a.batch} images "
          f"({2 * a.batch} views), finetune batch {a.finetune_batch}, {a.epochs} epochs, {a.reps} reps"
          f"{' [QUICK smoke test]' if a.quick else ''}")
    print(table(results))
    if busy:
        print(f"warning: the CPUs were {'-' if busy0 is None else f'{busy0:.0%}'} busy before the run (load average "
              f"{load0[0]:.2f} on {cpus} CPUs): numbers not valid")
    for line in suspect:
        print(f"warning: {line}: a measurement was disturbed; numbers not valid")
    os.makedirs(os.path.join(ROOT, out_dir), exist_ok=True)
    stamp = started.strftime("%Y%m%d-%H%M%S")
    for name in ("bench-latest.json", f"bench-{stamp}.json"):
        with open(os.path.join(ROOT, out_dir, name), "w") as f:
            json.dump(doc, f, indent=1)
            f.write("\n")
    print(f"wrote {out_dir}/bench-latest.json and {out_dir}/bench-{stamp}.json")
    if not a.keep:
        shutil.rmtree(b.work, ignore_errors=True)
    else:
        print(f"kept {b.work}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
