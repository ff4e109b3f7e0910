#!/usr/bin/env python3
"""bench:quality's Torch-Pruning side (run by bench/quality.ts in the bench-only venv bench/.venv-torch).

Reads a JSON request on stdin, prints one JSON line on stdout (progress on stderr).

mode "check": loads a tfjs Sequential baseline (model.json + weights.bin) into the same PyTorch
  architecture and reports its Fashion-MNIST test accuracy (must equal the tfjs one to ~0.1 point:
  conv kernels HWIO -> OIHW, the first Dense's rows reordered from NHWC- to NCHW-flatten order,
  BatchNorm epsilon/momentum carried over, the final softmax dropped in favour of logits + CE loss).
mode "prune": Torch-Pruning's iterative protocol (BasePruner, GroupMagnitudeImportance(p=2) = the
  group L2 norm, `steps` iterative steps on its linear scheduler, the classifier ignored), its
  pruning_ratio bisected so the pruned model's MACs match `targetMacs` (our MACs of the prunewise
  result, same counting as ml/cost.ts: conv and dense weight MACs, no bias, no BN/pool) within
  ~2 % (global pruning when no local ratio lands within 2 %: its MACs drift with fine-tuning); after each step that round's fine-tuning
  (samples, peak learning rate, constant or cosine; Adam, a fresh optimizer per round like ours, since
  the parameters change shape; plain cross-entropy: Torch-Pruning's protocol has no distillation), for each seed. Then
  test accuracy and the paired speedup over the baseline on PyTorch CPU at `batch`, ABBA-interleaved
  (the same estimator as ml/speedup.ts: r = exp(mean log(t_base / t_pruned)), 95 % interval).
"""
import copy
import gzip
import json
import math
import os
import struct
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch_pruning as tp


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def load_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    (magic,) = struct.unpack(">I", data[:4])
    nd = magic & 0xFF
    dims = struct.unpack(">" + "I" * nd, data[4 : 4 + 4 * nd])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * nd).reshape(dims)


def load_fashion(d, train_limit=None, test_limit=None):
    """Pixels / 255 (prunewise's 'unit' scale), NCHW float32; the official train and test splits."""
    xtr = load_idx(os.path.join(d, "train-images-idx3-ubyte.gz"))
    ytr = load_idx(os.path.join(d, "train-labels-idx1-ubyte.gz"))
    xte = load_idx(os.path.join(d, "t10k-images-idx3-ubyte.gz"))
    yte = load_idx(os.path.join(d, "t10k-labels-idx1-ubyte.gz"))
    if train_limit:
        xtr, ytr = xtr[:train_limit], ytr[:train_limit]
    if test_limit:
        xte, yte = xte[:test_limit], yte[:test_limit]
    f = lambda x: torch.from_numpy((x.astype(np.float32) / 255.0)[:, None, :, :])
    return f(xtr), torch.from_numpy(ytr.astype(np.int64)), f(xte), torch.from_numpy(yte.astype(np.int64))


# ------------------------------------------------------------------------------ tfjs -> PyTorch


def read_tfjs(model_dir):
    with open(os.path.join(model_dir, "model.json")) as f:
        mj = json.load(f)
    weights = {}
    for group in mj["weightsManifest"]:
        buf = b"".join(open(os.path.join(model_dir, p), "rb").read() for p in group["paths"])
        off = 0
        for w in group["weights"]:
            assert w.get("dtype", "float32") == "float32" and "quantization" not in w, f"{w['name']}: only float32 weights"
            n = int(np.prod(w["shape"])) if w["shape"] else 1
            weights[w["name"]] = np.frombuffer(buf, dtype="<f4", count=n, offset=off).reshape(w["shape"]).copy()
            off += 4 * n
    return mj["modelTopology"], weights


class Net(nn.Sequential):
    """A tfjs Sequential of Conv2D / BatchNormalization / ReLU / MaxPooling2D / Flatten / Dense, NCHW, logits out."""


def build_torch(topology, weights, in_shape=(1, 28, 28)):
    layers = topology["config"]["layers"] if isinstance(topology["config"], dict) else topology["config"]
    mods = []
    c, h, w = in_shape
    flat_hwc = None  # (h, w, c) at the Flatten, for the first Dense's row order
    act = lambda a: [nn.ReLU()] if a == "relu" else [] if a in ("linear", None, "softmax") else None
    for i, L in enumerate(layers):
        cls, cfg = L["class_name"], L["config"]
        name = cfg["name"]
        if cls == "Conv2D":
            k = cfg["kernel_size"]
            assert cfg["strides"] == [1, 1] and cfg["dilation_rate"] == [1, 1] and k[0] % 2 == 1, f"{name}: only stride 1, odd kernels"
            pad = (k[0] // 2, k[1] // 2) if cfg["padding"] == "same" else (0, 0)
            conv = nn.Conv2d(c, cfg["filters"], tuple(k), padding=pad, bias=cfg["use_bias"])
            conv.weight.data = torch.from_numpy(weights[f"{name}/kernel"].transpose(3, 2, 0, 1).copy())  # HWIO -> OIHW
            if cfg["use_bias"]:
                conv.bias.data = torch.from_numpy(weights[f"{name}/bias"])
            mods.append(conv)
            c = cfg["filters"]
            if cfg["padding"] != "same":
                h, w = h - k[0] + 1, w - k[1] + 1
            a = act(cfg["activation"])
            assert a is not None, f"{name}: activation {cfg['activation']}"
            mods += a
        elif cls == "BatchNormalization":
            bn = nn.BatchNorm2d(c, eps=cfg["epsilon"], momentum=1 - cfg["momentum"])
            bn.weight.data = torch.from_numpy(weights[f"{name}/gamma"])
            bn.bias.data = torch.from_numpy(weights[f"{name}/beta"])
            bn.running_mean.data = torch.from_numpy(weights[f"{name}/moving_mean"])
            bn.running_var.data = torch.from_numpy(weights[f"{name}/moving_variance"])
            mods.append(bn)
        elif cls == "ReLU":
            mods.append(nn.ReLU())
        elif cls == "MaxPooling2D":
            p, s = cfg["pool_size"], cfg["strides"] or cfg["pool_size"]
            assert cfg["padding"] == "valid"
            mods.append(nn.MaxPool2d(tuple(p), tuple(s)))
            h, w = (h - p[0]) // s[0] + 1, (w - p[1]) // s[1] + 1
        elif cls == "Flatten":
            mods.append(nn.Flatten())
            flat_hwc = (h, w, c)
            c = h * w * c
        elif cls == "Dense":
            units = cfg["units"]
            lin = nn.Linear(c, units, bias=cfg["use_bias"])
            kern = weights[f"{name}/kernel"]  # [in, out]
            if flat_hwc is not None:
                # tfjs flattens NHWC (row index h·W·C + w·C + ch); PyTorch NCHW (ch·H·W + h·W + w)
                fh, fw, fc = flat_hwc
                kern = kern.reshape(fh, fw, fc, units).transpose(2, 0, 1, 3).reshape(fh * fw * fc, units)
                flat_hwc = None
            lin.weight.data = torch.from_numpy(kern.T.copy())
            if cfg["use_bias"]:
                lin.bias.data = torch.from_numpy(weights[f"{name}/bias"])
            mods.append(lin)
            c = units
            last = i == len(layers) - 1
            assert not (cfg["activation"] == "softmax" and not last), f"{name}: softmax only at the end"
            a = act(cfg["activation"])
            assert a is not None, f"{name}: activation {cfg['activation']}"
            mods += a
        else:
            raise SystemExit(f"tp_quality.py: layer {name}: class {cls} is not converted")
    return Net(*mods)


def macs_of(model, in_shape=(1, 1, 28, 28)):
    """MACs per example as ml/cost.ts counts them: conv weight numel x output positions, dense weight numel."""
    total = [0]

    def hook(m, inp, out):
        if isinstance(m, nn.Conv2d):
            total[0] += m.weight.numel() * out.shape[2] * out.shape[3]
        elif isinstance(m, nn.Linear):
            total[0] += m.weight.numel()

    hs = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    model.eval()
    with torch.no_grad():
        model(torch.zeros(in_shape))
    for h in hs:
        h.remove()
    return total[0]


def widths(model):
    return [m.out_channels if isinstance(m, nn.Conv2d) else m.out_features for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


@torch.no_grad()
def accuracy(model, x, y, bs=1000):
    model.eval()
    right = 0
    for i in range(0, len(x), bs):
        right += (model(x[i : i + bs]).argmax(1) == y[i : i + bs]).sum().item()
    return right / len(x)


def augment_batch(xb, aug, g):
    """prunewise's augmentation (ml/recipe.ts augmentImages), the same distribution: each image flipped left-right
    with probability 1/2 when aug["flip"], shifted by dx, dy uniform in [-shift, shift] whole pixels, zeros filling in."""
    s = aug["shift"]
    n, _c, h, w = xb.shape
    if aug["flip"]:
        f = torch.from_numpy(g.random(n) < 0.5)
        xb = torch.where(f[:, None, None, None], xb.flip(3), xb)
    if s > 0:
        pad = F.pad(xb, (s, s, s, s))
        d = g.integers(-s, s + 1, size=(n, 2))
        xb = torch.stack([pad[i, :, s - d[i, 1] : s - d[i, 1] + h, s - d[i, 0] : s - d[i, 0] + w] for i in range(n)])
    return xb


def finetune(model, x, y, phase, seed, batch, round_index, aug=None):
    """One round's fine-tuning, as bench/quality.ts runs ours: ceil(samples / batch) Adam steps over the whole
    split in an order drawn by seed (stopping mid-epoch), peak rate `lr`, constant or cosine to 0 over the
    round (ml/recipe.ts learningRateAt, no warm-up); a fresh Adam per round (the parameters changed shape)."""
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=phase["lr"], betas=(0.9, 0.999), eps=1e-7)
    g = np.random.default_rng(seed * 1000 + round_index)
    total = -(-phase["samples"] // batch)
    order = np.concatenate([g.permutation(len(x)) for _ in range(-(-total * batch // len(x)))])
    for step in range(total):
        lr = phase["lr"] if phase["schedule"] == "constant" else phase["lr"] / 2 * (1 + math.cos(math.pi * min(1.0, step / max(1, total))))
        for pg in opt.param_groups:
            pg["lr"] = lr
        idx = torch.from_numpy(order[step * batch : (step + 1) * batch])
        xb = x[idx] if aug is None else augment_batch(x[idx], aug, g)
        loss = F.cross_entropy(model(xb), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    model.eval()


def make_pruner(model, ratio, steps, global_pruning=False):
    last = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    return tp.pruner.BasePruner(
        model,
        torch.zeros(1, 1, 28, 28),
        importance=tp.importance.GroupMagnitudeImportance(p=2),
        pruning_ratio=ratio,
        iterative_steps=steps,
        ignored_layers=[last],
        global_pruning=global_pruning,
    )


def macs_at(base, ratio, steps, global_pruning):
    m = copy.deepcopy(base)
    p = make_pruner(m, ratio, steps, global_pruning)
    for _ in range(steps):
        p.step()
    return macs_of(m), widths(m)


def search_ratio(base, target, steps, global_pruning):
    """Bisection on pruning_ratio: MACs fall in steps (whole channels), so the closest of the bracket is returned."""
    lo, hi = 0.0, 0.95
    best = None
    for _ in range(18):
        mid = (lo + hi) / 2
        macs, _w = macs_at(base, mid, steps, global_pruning)
        cand = (abs(macs - target) / target, mid, macs)
        if best is None or cand[0] < best[0]:
            best = cand
        if macs > target:
            lo = mid
        else:
            hi = mid
    return best[1], best[2], best[0]


LOCAL_TOLERANCE = 0.02


def search(base, target, steps):
    """Local pruning (Torch-Pruning's default) when some ratio lands within 2 % of the target MACs; else
    global pruning (one ranking across layers, finer steps), whichever lands closer. The bisection prunes
    without fine-tuning: local pruning's widths (a ratio per layer) do not depend on the weights, so the
    real run lands on the same MACs, while global pruning's ranking changes with each round's fine-tuning
    (LeNet-5, 2026-12-07: bisected to 51.6 % MACs removed, the three seeds landed at 46.8-49.4 %) - hence
    local up to 2 % off rather than 1 %."""
    ratio, macs, err = search_ratio(base, target, steps, False)
    if err <= LOCAL_TOLERANCE:
        return ratio, macs, False
    g_ratio, g_macs, g_err = search_ratio(base, target, steps, True)
    log(f"tp: local pruning lands {100 * err:.1f} % off the target MACs; global pruning {100 * g_err:.1f} %")
    return (g_ratio, g_macs, True) if g_err < err else (ratio, macs, False)


def paired_speedup(base, pruned, batch, warmup=10, min_pairs=30, budget_s=20.0, ci=0.05):
    """ABBA-interleaved pairs of one forward each; r = exp(mean log(tb/tp)) with a 95 % t interval (ml/speedup.ts)."""
    x = torch.randn(batch, 1, 28, 28)
    base.eval()
    pruned.eval()
    with torch.inference_mode():
        for _ in range(warmup):
            base(x)
            pruned(x)
        ds, tb_all, tp_all = [], [], []
        t0 = time.perf_counter()
        while True:
            order = (base, pruned) if len(ds) % 2 == 0 else (pruned, base)
            t = {}
            for m in order:
                s = time.perf_counter()
                m(x)
                t[id(m)] = (time.perf_counter() - s) * 1000
            tb, tq = t[id(base)], t[id(pruned)]
            tb_all.append(tb)
            tp_all.append(tq)
            ds.append(math.log(tb / tq))
            n = len(ds)
            if n >= min_pairs:
                mean = sum(ds) / n
                sd = math.sqrt(sum((d - mean) ** 2 for d in ds) / (n - 1))
                h = 1.96 * sd / math.sqrt(n) if n > 30 else 2.045 * sd / math.sqrt(n)
                if h <= ci or time.perf_counter() - t0 >= budget_s:
                    return {
                        "r": math.exp(mean),
                        "low": math.exp(mean - h),
                        "high": math.exp(mean + h),
                        "pairs": n,
                        "baselineMs": float(np.median(tb_all)),
                        "prunedMs": float(np.median(tp_all)),
                    }


def main():
    req = json.load(sys.stdin)
    torch.set_num_threads(int(req.get("threads", 1)))
    topology, weights = read_tfjs(req["baselineDir"])
    base = build_torch(topology, weights)
    xtr, ytr, xte, yte = load_fashion(req["dataDir"], req.get("trainLimit"), req.get("testLimit"))
    base_acc = accuracy(base, xte, yte)
    base_macs = macs_of(base)
    out = {"torch": torch.__version__, "torchPruning": tp.__version__, "threads": torch.get_num_threads(), "baselineAccuracy": base_acc, "baselineMacs": base_macs}
    if req["mode"] == "check":
        print(json.dumps(out))
        return
    steps = req["steps"]
    ratio, macs, global_pruning = search(base, req["targetMacs"], steps)
    log(f"tp: pruning_ratio {ratio:.4f} ({'global' if global_pruning else 'local'}) gives {macs} MACs (target {req['targetMacs']}, {100 * (macs / req['targetMacs'] - 1):+.2f} %)")
    out.update(
        {
            "pruningRatio": ratio,
            "globalPruning": global_pruning,
            "steps": steps,
            "importance": "GroupMagnitudeImportance(p=2)",
            "pruner": f"BasePruner ({'global' if global_pruning else 'local'}, linear scheduler)",
            "runs": [],
        }
    )
    for seed in req["seeds"]:
        t0 = time.time()
        torch.manual_seed(seed)
        m = copy.deepcopy(base)
        pruner = make_pruner(m, ratio, steps, global_pruning)
        for r in range(steps):
            pruner.step()
            finetune(m, xtr, ytr, req["rounds"][r], seed, req["batch"], r + 1, req.get("augment"))
        acc = accuracy(m, xte, yte)
        sp = paired_speedup(base, m, req["latencyBatch"], budget_s=req.get("latencyBudgetSeconds", 20.0))
        run = {"seed": seed, "accuracy": acc, "macs": macs_of(m), "widths": widths(m), "speedup": sp, "seconds": time.time() - t0}
        log(f"tp seed {seed}: acc {100 * acc:.2f} %, MACs {run['macs']}, widths {run['widths']}, speedup {sp['r']:.2f}x ({run['seconds']:.0f} s)")
        out["runs"].append(run)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
