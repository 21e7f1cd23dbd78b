#!/usr/bin/python3
"""torch_ref.py OUTDIR: PyTorch reference tensors for tests/test_layers.c, test_loss.c and
test_core.c.

Writes raw little-endian float32 files OUTDIR/NAME.bin. Inputs and parameters are drawn
with a fixed seed (torch.manual_seed), rounded to float32 (so C and PyTorch start from the
same numbers), and every output and gradient is computed in float64 with torch autograd,
then cast to float32. Layout: convolution activations (inputs, outputs, their gradients)
are written in the C code's CNHW order (x[c][b][h][w], i.e. x.permute(1, 0, 2, 3)); conv
weights keep PyTorch's (Cout, Cin, K, K) and dense weights (out, in).

Needs python3-torch (Debian's package is visible to /usr/bin/python3). Exit status 3 with a
message when torch cannot be imported. Files are written to a temporary name and renamed,
so test programs running this concurrently never read a half-written file.
"""
import os
import sys

try:
    import torch
    import torch.nn.functional as F
except ImportError as e:  # pragma: no cover
    sys.stderr.write("torch_ref.py: cannot import torch (%s): install python3-torch and run "
                     "with /usr/bin/python3\n" % e)
    sys.exit(3)

D = torch.float64
OUT = None


def put(name, t):
    """Writes tensor t (any shape) as float32 little-endian to OUT/name.bin."""
    a = t.detach().to(torch.float32).contiguous().cpu().numpy().astype("<f4")
    path = os.path.join(OUT, name + ".bin")
    tmp = "%s.tmp.%d" % (path, os.getpid())
    a.tofile(tmp)
    os.replace(tmp, path)


def cnhw(t):
    """NCHW -> CNHW (the C activation layout)."""
    return t.permute(1, 0, 2, 3)


def f32(t):
    """Rounds to float32 and back, so that the float64 computation uses the C inputs."""
    return t.to(torch.float32).to(D)


def randn(*shape, scale=1.0):
    return f32(torch.randn(*shape, dtype=D) * scale)


def uniform(*shape, lo=-1.0, hi=1.0):
    return f32(torch.rand(*shape, dtype=D) * (hi - lo) + lo)


def conv_case():
    # cin 3, cout 4, 9x9, n 2, k 3, stride 2, no padding -> 4x4 outputs
    x = randn(2, 3, 9, 9).requires_grad_()
    w = randn(4, 3, 3, 3, scale=0.3).requires_grad_()
    b = randn(4, scale=0.3).requires_grad_()
    dy = randn(2, 4, 4, 4)
    put("conv_x", cnhw(x))
    put("conv_w", w)
    put("conv_b", b)
    put("conv_dy", cnhw(dy))
    for tag, relu in (("", False), ("r", True)):
        y = F.conv2d(x, w, b, stride=2)
        if relu:
            y = F.relu(y)
        dx, dw, db = torch.autograd.grad(y, (x, w, b), dy)
        put("conv_y" + tag, cnhw(y))
        put("conv_dx" + tag, cnhw(dx))
        put("conv_dw" + tag, dw)
        put("conv_db" + tag, db)


def dense_case():
    # n 3, in 5, out 4
    x = randn(3, 5).requires_grad_()
    w = randn(4, 5, scale=0.5).requires_grad_()
    b = randn(4, scale=0.5).requires_grad_()
    dy = randn(3, 4)
    put("dense_x", x)
    put("dense_w", w)
    put("dense_b", b)
    put("dense_dy", dy)
    for tag, relu in (("", False), ("r", True)):
        y = F.linear(x, w, b)
        if relu:
            y = F.relu(y)
        dx, dw, db = torch.autograd.grad(y, (x, w, b), dy)
        put("dense_y" + tag, y)
        put("dense_dx" + tag, dx)
        put("dense_dw" + tag, dw)
        put("dense_db" + tag, db)


def flatten_case():
    # NCHW (n 2, c 3, h 2, w 3): CNHW input and torch.flatten(x, 1)
    x = randn(2, 3, 2, 3)
    put("flat_x", cnhw(x))
    put("flat_y", torch.flatten(x, 1))


def bn_case():
    """BatchNorm2d in training mode (batch statistics, running statistics updated with
    momentum 0.1 from given values) and in eval mode; x (n 3, c 4, 5x5), relu off and on."""
    x = (randn(3, 4, 5, 5) * 2.0 + 0.5).requires_grad_()
    gamma = uniform(4, lo=0.5, hi=1.5).requires_grad_()
    beta = randn(4, scale=0.5).requires_grad_()
    rm0, rv0 = randn(4, scale=0.3), uniform(4, lo=0.5, hi=1.5)
    dy = randn(3, 4, 5, 5)
    for name, t in (("bn_x", cnhw(x)), ("bn_gamma", gamma), ("bn_beta", beta), ("bn_rm0", rm0),
                    ("bn_rv0", rv0), ("bn_dy", cnhw(dy))):
        put(name, t)
    for tag, relu in (("", False), ("r", True)):
        rm, rv = rm0.clone(), rv0.clone()
        y = F.batch_norm(x, rm, rv, gamma, beta, training=True, momentum=0.1, eps=1e-5)
        if relu:
            y = F.relu(y)
        dx, dg, db = torch.autograd.grad(y, (x, gamma, beta), dy)
        put("bn_y" + tag, cnhw(y))
        put("bn_dx" + tag, cnhw(dx))
        put("bn_dgamma" + tag, dg)
        put("bn_dbeta" + tag, db)
        put("bn_rm" + tag, rm)
        put("bn_rv" + tag, rv)
    y = F.batch_norm(x, rm0, rv0, gamma, beta, training=False, eps=1e-5)
    put("bn_yeval", cnhw(y))


def model_case(bn=False):
    """The model.h network with model_cfg {image_size 17, conv_layers 2, width 4, kernel 3,
    embed_dim 5, proj_dim 6, num_classes 3, batchnorm bn}, batch 2 (bn: batch 3, training
    mode). Parameters are written in the order of model.c's tensor list, with the same
    names (PREFIX_tensors.txt lists them); PREFIX is model or model_bn."""
    S, L, W, K, E, P, C, N = 17, 2, 4, 3, 5, 6, 3, (3 if bn else 2)
    pre = "model_bn" if bn else "model"
    shapes = []
    cin, size = 3, S
    for i in range(L):
        shapes.append(("encoder.conv%d.weight" % i, (W, cin, K, K)))
        if bn:
            shapes.append(("encoder.bn%d.weight" % i, (W,)))
            shapes.append(("encoder.bn%d.bias" % i, (W,)))
        else:
            shapes.append(("encoder.conv%d.bias" % i, (W,)))
        cin, size = W, (size - K) // 2 + 1
    flat = W * size * size
    shapes += [("encoder.fc.weight", (E, flat)), ("encoder.fc.bias", (E,)),
               ("head.fc0.weight", (P, E)), ("head.fc0.bias", (P,)),
               ("head.fc1.weight", (P, P)), ("head.fc1.bias", (P,)),
               ("classifier.weight", (C, E)), ("classifier.bias", (C,))]
    params = {}
    for name, shp in shapes:
        fan_in = 1
        for s in (shp[1:] if len(shp) > 1 else ()):
            fan_in *= s
        if ".bn" in name and name.endswith("weight"):
            params[name] = uniform(*shp, lo=0.5, hi=1.5).requires_grad_()
        elif len(shp) == 1:
            params[name] = uniform(*shp, lo=-0.1, hi=0.3).requires_grad_()
        else:
            lim = (3.0 / fan_in) ** 0.5
            params[name] = uniform(*shp, lo=-lim, hi=lim).requires_grad_()
    lst = os.path.join(OUT, pre + "_tensors.txt")
    with open(lst + ".tmp", "w") as f:
        for name, shp in shapes:
            f.write("%s %d\n" % (name, params[name].numel()))
    os.replace(lst + ".tmp", lst)
    for name, _ in shapes:
        put(pre + "_param_" + name, params[name])

    x = uniform(N, 3, S, S, lo=0.0, hi=1.0)
    put(pre + "_x", cnhw(x))
    h = x
    for i in range(L):
        if bn:  # training mode: batch statistics; running statistics from PyTorch's init
            h = F.conv2d(h, params["encoder.conv%d.weight" % i], None, stride=2)
            rm, rv = torch.zeros(W, dtype=D), torch.ones(W, dtype=D)
            h = F.relu(F.batch_norm(h, rm, rv, params["encoder.bn%d.weight" % i],
                                    params["encoder.bn%d.bias" % i], training=True, momentum=0.1, eps=1e-5))
            put(pre + "_running_mean%d" % i, rm)
            put(pre + "_running_var%d" % i, rv)
        else:
            h = F.relu(F.conv2d(h, params["encoder.conv%d.weight" % i],
                                params["encoder.conv%d.bias" % i], stride=2))
    h = torch.flatten(h, 1)
    embed = F.relu(F.linear(h, params["encoder.fc.weight"], params["encoder.fc.bias"]))
    hidden = F.relu(F.linear(embed, params["head.fc0.weight"], params["head.fc0.bias"]))
    proj = F.linear(hidden, params["head.fc1.weight"], params["head.fc1.bias"])
    logits = F.linear(embed, params["classifier.weight"], params["classifier.bias"])
    # the test is only meaningful when the ReLUs pass something
    assert (embed > 0).sum() >= 4 and (hidden > 0).sum() >= 4, "degenerate model reference"
    put(pre + "_embed", embed)
    put(pre + "_proj", proj)
    put(pre + "_logits", logits)

    names = [n for n, _ in shapes]
    tensors = [params[n] for n in names]
    dproj = randn(N, P)
    put(pre + "_dproj", dproj)
    g = torch.autograd.grad(proj, tensors, dproj, retain_graph=True, allow_unused=True)
    for n, gi in zip(names, g):  # every tensor on the path gets a nonzero gradient
        assert n.startswith("classifier") or (gi is not None and gi.abs().sum() > 0), n
        put(pre + "_gproj_" + n, gi if gi is not None else torch.zeros_like(params[n]))
    dlogits = randn(N, C)
    put(pre + "_dlogits", dlogits)
    g = torch.autograd.grad(logits, tensors, dlogits, retain_graph=True, allow_unused=True)
    for n, gi in zip(names, g):
        assert n.startswith("head") or (gi is not None and gi.abs().sum() > 0), n
        put(pre + "_glogits_" + n, gi if gi is not None else torch.zeros_like(params[n]))

    # the linear probe on the conv features (model.probe_features = "conv"): a classifier
    # (C, flat) on the flattened last conv feature map (NCHW order), the encoder frozen
    lim = (3.0 / flat) ** 0.5
    wc = uniform(C, flat, lo=-lim, hi=lim).requires_grad_()
    bc = uniform(C, lo=-0.1, hi=0.3).requires_grad_()
    lc = F.linear(h, wc, bc)
    dl = randn(N, C)
    gw, gb = torch.autograd.grad(lc, (wc, bc), dl)
    for name, t in (("weight", wc), ("bias", bc), ("logits", lc), ("dlogits", dl), ("gweight", gw), ("gbias", gb)):
        put(pre + "_probe_" + name, t)

    # fine-tuning from the projection head's first layer (model.finetune_from = "head0",
    # SimCLR v2): a classifier (C, P) on hidden = ReLU(head.fc0(embed)); the gradients of
    # every tensor for L = <logits, dlogits> (head.fc1 off the path: zero)
    lim = (3.0 / P) ** 0.5
    wh = uniform(C, P, lo=-lim, hi=lim).requires_grad_()
    bh = uniform(C, lo=-0.1, hi=0.3).requires_grad_()
    lh = F.linear(hidden, wh, bh)
    dlh = randn(N, C)
    own = [n for n in names if not n.startswith("classifier")]
    g = torch.autograd.grad(lh, [params[n] for n in own] + [wh, bh], dlh, allow_unused=True)
    for name, t in (("weight", wh), ("bias", bh), ("logits", lh), ("dlogits", dlh)):
        put(pre + "_head_" + name, t)
    for n, gi in zip(own + ["classifier.weight", "classifier.bias"], g):
        assert n.startswith("head.fc1") or (gi is not None and gi.abs().sum() > 0), n
        put(pre + "_head_g_" + n, gi if gi is not None else torch.zeros_like(params[n]))


def partners(counts):
    """SimCLR all-gathered layout: per rank a block of 2*c rows (view 1 then view 2)."""
    p, base = [], 0
    for c in counts:
        p += [base + (o + c if o < c else o - c) for o in range(2 * c)]
        base += 2 * c
    return torch.tensor(p, dtype=torch.long)


def ntxent_ref(z, part, tau):
    """Chen et al. 2020 eq. 1, mean over all 2N anchors."""
    zn = F.normalize(z, dim=1)
    sim = zn @ zn.t() / tau
    n = z.shape[0]
    sim = sim.masked_fill(torch.eye(n, dtype=torch.bool), float("-inf"))
    return F.cross_entropy(sim, part, reduction="mean")


def loss_cases():
    for tag, counts, d, tau in (("ntx1", [3], 4, 0.5), ("ntx3", [2, 1, 3], 5, 0.2)):
        n = 2 * sum(counts)
        z = randn(n, d).requires_grad_()
        loss = ntxent_ref(z, partners(counts), tau)
        (dz,) = torch.autograd.grad(loss, (z,))
        put(tag + "_z", z)
        put(tag + "_loss", loss.reshape(1))
        put(tag + "_dz", dz)
        put(tag + "_partner", partners(counts).to(D))

    # softmax cross-entropy, n 5, c 4, summed
    logits = randn(5, 4, scale=2.0).requires_grad_()
    labels = torch.tensor([0, 3, 1, 1, 2])
    loss = F.cross_entropy(logits, labels, reduction="sum")
    (dl,) = torch.autograd.grad(loss, (logits,))
    put("xent_logits", logits)
    put("xent_labels", labels.to(D))
    put("xent_loss", loss.reshape(1))
    put("xent_dlogits", dl)
    put("xent_ncorrect", (logits.argmax(1) == labels).sum().to(D).reshape(1))

    # soft-target cross-entropy (self-training distillation), n 6, c 5, tau 2
    logits = randn(6, 5, scale=2.0).requires_grad_()
    targets = F.softmax(randn(6, 5, scale=3.0) / 2.0, dim=1)
    loss = F.cross_entropy(logits / 2.0, targets, reduction="sum")
    (dl,) = torch.autograd.grad(loss, (logits,))
    put("soft_logits", logits)
    put("soft_targets", targets)
    put("soft_loss", loss.reshape(1))
    put("soft_dlogits", dl)
    put("soft_probs", F.softmax(logits / 2.0, dim=1))

    # L2 normalisation, n 4, d 5
    z = randn(4, 5).requires_grad_()
    zn = F.normalize(z, dim=1)
    dzn = randn(4, 5)
    (dz,) = torch.autograd.grad(zn, (z,), dzn)
    put("l2_z", z)
    put("l2_zn", zn)
    put("l2_norm", z.norm(dim=1))
    put("l2_dzn", dzn)
    put("l2_dz", dz)


def adam_case():
    """torch.optim.Adam(lr 0.1, betas (0.9, 0.999), eps 1e-8), 3 steps on 3 parameters."""
    p = f32(torch.tensor([0.5, -1.25, 2.0], dtype=D)).requires_grad_()
    # the third parameter's gradients are tiny, so that where eps enters matters
    grads = f32(torch.tensor([[0.3, -0.7, 2e-8],
                              [-0.1, -0.5, -1e-8],
                              [0.25, 0.6, 3e-8]], dtype=D))
    opt = torch.optim.Adam([p], lr=0.1, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    put("adam_p0", p)
    put("adam_g", grads)
    steps = []
    for t in range(3):
        p.grad = grads[t].clone()
        opt.step()
        steps.append(p.detach().clone())
    put("adam_p", torch.stack(steps))


def blur_case():
    """torchvision's gaussian_blur by hand: reflect padding, then the normalised 2-D kernel
    (outer product of the 1-D one); 3 planes of 12 x 10, kernel 5, sigma 1.3."""
    x = uniform(3, 12, 10, lo=0.0, hi=1.0)
    k, sigma = 5, 1.3
    t = torch.linspace(-(k - 1) / 2, (k - 1) / 2, k, dtype=D)
    k1 = torch.exp(-0.5 * (t / sigma) ** 2)
    k1 = k1 / k1.sum()
    k2 = torch.outer(k1, k1).expand(3, 1, k, k)
    y = F.conv2d(F.pad(x[None], (2, 2, 2, 2), mode="reflect"), k2, groups=3)[0]
    put("blur_x", x)
    put("blur_y", y)


def main():
    global OUT
    if len(sys.argv) != 2:
        sys.stderr.write("usage: torch_ref.py OUTDIR\n")
        sys.exit(2)
    OUT = sys.argv[1]
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(20240611)
    conv_case()
    dense_case()
    flatten_case()
    model_case()
    loss_cases()
    adam_case()
    bn_case()  # after the older cases: their random draws stay as they were
    model_case(bn=True)
    blur_case()


if __name__ == "__main__":
    main()
