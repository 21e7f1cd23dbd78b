#!/usr/bin/python3
"""PyTorch fp32 twin of one simclr-mpi training step, for bench/bench.py.

The same network as src/model.c (conv_layers x [Conv2d k x k stride 2, no padding, width,
ReLU], or with --batchnorm Conv2d without bias + BatchNorm2d + ReLU (model.batchnorm), Flatten, Linear(flat, embed) ReLU; head Linear ReLU Linear; classifier Linear), the
same loss (NT-Xent over all 2N views, Chen et al. 2020 eq. 1, temperature 0.1, mean over
the 2N anchors; softmax cross-entropy for finetune) and the same optimizer (Adam, lr 1e-3,
betas (0.9, 0.999), eps 1e-7), fp32, on `--threads` threads.

Inputs are random tensors already in memory: reading and augmenting images is EXCLUDED
here (the C step includes it; bench.py also reports the C step without it).

Modes:
  pretrain  N images = 2N views: encoder + head, NT-Xent, backward, Adam step
  finetune  N images: encoder + classifier, cross-entropy, backward, Adam step
  eval      N images: encoder + classifier forward under no_grad
Times --warmup steps (discarded) then --reps steps one by one; prints one JSON line with
images_per_s = N / median step time.

Debian's python3-torch (1.13) is only importable by /usr/bin/python3. Its BLAS is the
system libblas (BLIS-openmp on this machine) and its convolutions use oneDNN: both are given
the thread count through OMP_NUM_THREADS / BLIS_NUM_THREADS, set here before torch loads.
"""
import argparse
import json
import os
import resource
import statistics
import sys
import time


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mode", choices=["pretrain", "finetune", "eval"], default="pretrain")
    ap.add_argument("--batch", type=int, default=128, help="images per step (pretrain: 2x views)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--image-size", type=int, default=96)
    ap.add_argument("--conv-layers", type=int, default=4)
    ap.add_argument("--width", type=int, default=128)
    ap.add_argument("--kernel", type=int, default=3)
    ap.add_argument("--embed", type=int, default=128)
    ap.add_argument("--proj", type=int, default=128)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--batchnorm", choices=["true", "false"], default="false",
                    help="model.batchnorm: conv without bias + BatchNorm2d before each ReLU")
    ap.add_argument("--temperature", type=float, default=0.1)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--beta1", type=float, default=0.9)
    ap.add_argument("--beta2", type=float, default=0.999)
    ap.add_argument("--eps", type=float, default=1e-7)
    a = ap.parse_args()
    if a.batch < 1 or a.threads < 1 or a.reps < 1 or a.warmup < 0:
        ap.error("--batch, --threads, --reps must be >= 1 and --warmup >= 0")

    for var in ("OMP_NUM_THREADS", "BLIS_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(a.threads)
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    torch.set_num_threads(a.threads)
    torch.manual_seed(0)

    layers, cin, size = [], 3, a.image_size
    bn = a.batchnorm == "true"
    for _ in range(a.conv_layers):
        layers += [nn.Conv2d(cin, a.width, a.kernel, stride=2, bias=not bn)]
        layers += [nn.BatchNorm2d(a.width), nn.ReLU()] if bn else [nn.ReLU()]
        cin, size = a.width, (size - a.kernel) // 2 + 1
    flat = a.width * size * size
    encoder = nn.Sequential(*layers, nn.Flatten(), nn.Linear(flat, a.embed), nn.ReLU())
    head = nn.Sequential(nn.Linear(a.embed, a.proj), nn.ReLU(), nn.Linear(a.proj, a.proj))
    classifier = nn.Linear(a.embed, a.classes)

    N = a.batch
    if a.mode == "pretrain":
        params = list(encoder.parameters()) + list(head.parameters())
        x = torch.rand(2 * N, 3, a.image_size, a.image_size)
        partner = torch.cat([torch.arange(N, 2 * N), torch.arange(0, N)])
        eye = torch.eye(2 * N, dtype=torch.bool)
    else:
        params = list(encoder.parameters()) + list(classifier.parameters())
        x = torch.rand(N, 3, a.image_size, a.image_size)
        y = torch.randint(0, a.classes, (N,))
    if a.mode == "eval":
        encoder.eval()  # BatchNorm normalises with its running statistics, as eval does in C
    opt = torch.optim.Adam(params, lr=a.lr, betas=(a.beta1, a.beta2), eps=a.eps)

    def step():
        if a.mode == "eval":
            with torch.no_grad():
                classifier(encoder(x))
            return
        opt.zero_grad(set_to_none=False)
        if a.mode == "pretrain":
            z = F.normalize(head(encoder(x)), dim=1)
            logits = (z @ z.t()) / a.temperature
            logits = logits.masked_fill(eye, float("-inf"))  # k != i in the denominator
            loss = F.cross_entropy(logits, partner)  # mean over the 2N anchors
        else:
            loss = F.cross_entropy(classifier(encoder(x)), y)
        loss.backward()
        opt.step()

    for _ in range(a.warmup):
        step()
    times = []
    for _ in range(a.reps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    views = 2 * N if a.mode == "pretrain" else N
    out = {
        "mode": a.mode, "batch_images": N, "views": views, "threads": torch.get_num_threads(),
        "warmup": a.warmup, "reps": a.reps, "step_seconds": times, "step_seconds_median": med,
        "images_per_s": N / med, "images_per_s_best": N / min(times),
        "max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "batchnorm": bn, "torch_version": torch.__version__, "mkldnn": bool(torch.backends.mkldnn.is_available()),
        "augmentation": "excluded (random input tensors)", "dtype": "float32",
    }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
