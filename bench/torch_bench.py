#!/usr/bin/env python3
"""PyTorch side of `mce bench`: the same computation as src/bench/workloads/*.ts, on the same inputs.

Called by src/bench/torch.ts, one process per workload and mode:

    torch_bench.py '<json config>'

config: {"workload": name, "mode": "time" | "mem", "inputs": path of a raw little-endian float32 file,
         "tensors": [{"name", "shape"}...] (the order of the arrays in that file),
         "params": {...workload sizes...}, "warmup": n, "reps": n, "budget_s": seconds,
         "intra_threads": n}

Prints one JSON object on stdout. Threads: the caller sets OPENBLAS_NUM_THREADS=2 and OMP_NUM_THREADS=1 and
we call torch.set_num_threads(1): OpenBLAS uses both cores for the matmuls, torch's own intra-op pool
stays at 1. That is torch's best 2-thread setting on this 2-vCPU machine; both pools at 2 oversubscribe
the cores and run ~4x slower (shared/reference/engine-measurements.md section 4).

mode "time": warm-up runs, then timed runs (median), then the check values (loss, gradient norms) that
the TypeScript side compares with its own.
mode "mem": meant to run with MALLOC_MMAP_THRESHOLD_=65536 (so freed tensors leave RSS): one warm-up
run, then the peak RSS growth during one more run above the RSS just before it (VmHWM reset through
/proc/self/clear_refs; falls back to ru_maxrss, which is the process's whole high-water mark).
"""
import gc
import json
import math
import resource
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F


def load_inputs(path, tensors):
    flat = np.fromfile(path, dtype="<f4")
    out, off = {}, 0
    for t in tensors:
        n = int(np.prod(t["shape"])) if t["shape"] else 1
        out[t["name"]] = torch.from_numpy(flat[off : off + n].reshape(t["shape"]).copy())
        off += n
    if off != flat.size:
        raise SystemExit(f"torch_bench: inputs file has {flat.size} floats, tensors need {off}")
    return out


def fro(t):
    return float(torch.linalg.vector_norm(t.double()))


# ------------------------------------------------------------------ workloads
# Each returns (run, check): run() does one timed repetition; check() returns the values compared with
# the TypeScript side.


def sgemm(a, p):
    A, B = a["a"], a["b"]

    def run():
        return torch.mm(A, B)

    def check():
        c = torch.mm(A, B)
        return {"fro": fro(c), "c00": float(c[0, 0])}

    return run, check


BLOCK_PARAMS = ["ln1_w", "ln1_b", "wq", "bq", "wk", "bk", "wv", "bv", "wo", "bo",
                "ln2_w", "ln2_b", "w1", "b1", "w2", "b2"]


def block(a, p):
    """Pre-LN transformer block: LN -> q,k,v -> softmax(q k^T / sqrt(dh)) v -> Wo -> residual,
    LN -> W1 -> GELU(tanh) -> W2 -> residual. Loss = sum(y * r); gradients for x and all 16 params."""
    B, T, D, H = p["batch"], p["tokens"], p["dim"], p["heads"]
    eps = p["eps"]
    dh = D // H
    x = a["x"].requires_grad_(True)
    r = a["r"]
    ps = [a[n].requires_grad_(True) for n in BLOCK_PARAMS]

    def forward(x, ps):
        (ln1_w, ln1_b, wq, bq, wk, bk, wv, bv, wo, bo, ln2_w, ln2_b, w1, b1, w2, b2) = ps
        h = F.layer_norm(x, (D,), ln1_w, ln1_b, eps)

        def heads(t):
            return t.reshape(B, T, H, dh).transpose(1, 2)

        q, k, v = heads(F.linear(h, wq, bq)), heads(F.linear(h, wk, bk)), heads(F.linear(h, wv, bv))
        att = torch.softmax(torch.matmul(q, k.transpose(-1, -2)) * (1.0 / math.sqrt(dh)), dim=-1)
        o = torch.matmul(att, v).transpose(1, 2).reshape(B, T, D)
        x1 = x + F.linear(o, wo, bo)
        h2 = F.layer_norm(x1, (D,), ln2_w, ln2_b, eps)
        return x1 + F.linear(F.gelu(F.linear(h2, w1, b1), approximate="tanh"), w2, b2)

    def run():
        loss = (forward(x, ps) * r).sum()
        return torch.autograd.grad(loss, [x] + ps)

    def check():
        loss = (forward(x, ps) * r).sum()
        g = torch.autograd.grad(loss, [x] + ps)
        return {"loss": float(loss), "grad_x": fro(g[0]), "grad_wq": fro(g[3]), "grad_w1": fro(g[13])}

    return run, check


EULER_PARAMS = ["w1", "b1", "w2", "b2", "w3", "b3"]


def time_embedding(t, batch, freqs):
    # Same formula as src/bench/workloads/euler8-ckpt.ts (float64, then float32).
    row = [math.sin(math.pi * f * t) for f in freqs] + [math.cos(math.pi * f * t) for f in freqs]
    return torch.tensor(row, dtype=torch.float32).reshape(1, -1).expand(batch, -1)


def euler_ckpt(a, p):
    """N Euler steps x_{k+1} = x_k + dt f([x_k || temb(t_k)]), f an MLP with SiLU; loss MSE(x_N, target).
    Checkpointed backprop: a no-grad forward that keeps every x_k, then a reverse loop that recomputes one
    step with autograd and takes its vjp w.r.t. (x_k, params) -- the same algorithm as
    src/engine/checkpoint.ts."""
    n, batch = p["steps"], p["batch"]
    freqs = p["freqs"]
    dt = 1.0 / n
    x0, target = a["x0"], a["target"]
    ps = [a[k].requires_grad_(True) for k in EULER_PARAMS]
    tembs = [time_embedding(k / n, batch, freqs) for k in range(n)]

    def step(x, k):
        w1, b1, w2, b2, w3, b3 = ps
        h = F.silu(F.linear(torch.cat([x, tembs[k]], 1), w1, b1))
        h = F.silu(F.linear(h, w2, b2))
        return x + dt * F.linear(h, w3, b3)

    def run():
        with torch.no_grad():
            xs = [x0]
            for k in range(n):
                xs.append(step(xs[k], k))
        xn = xs[n]
        loss = F.mse_loss(xn, target)
        g = 2.0 * (xn - target) / xn.numel()
        acc = [torch.zeros_like(q) for q in ps]
        for k in range(n - 1, -1, -1):
            xk = xs[k].detach().requires_grad_(True)
            with torch.enable_grad():
                y = step(xk, k)
                gs = torch.autograd.grad(y, [xk] + ps, g)
            g = gs[0]
            for i in range(len(ps)):
                acc[i] += gs[i + 1]
        return loss, g, acc

    def check():
        loss, gx, acc = run()
        return {"loss": float(loss), "grad_x0": fro(gx), "grad_w1": fro(acc[0]), "grad_w2": fro(acc[2])}

    return run, check


WORKLOADS = {"sgemm-1024": sgemm, "block-fwd-bwd": block, "euler8-ckpt": euler_ckpt}


# ------------------------------------------------------------------ memory


def status_kb(field):
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def reset_hwm():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def main():
    cfg = json.loads(sys.argv[1])
    torch.set_num_threads(int(cfg.get("intra_threads", 1)))
    name = cfg["workload"]
    if name not in WORKLOADS:
        raise SystemExit(f"torch_bench: unknown workload {name!r}")
    arrays = load_inputs(cfg["inputs"], cfg["tensors"])
    run, check = WORKLOADS[name](arrays, cfg.get("params", {}))
    out = {"workload": name, "torch_version": torch.__version__, "intra_threads": torch.get_num_threads()}
    if cfg["mode"] == "time":
        for _ in range(int(cfg.get("warmup", 2))):
            run()
        times, budget, start = [], float(cfg.get("budget_s", 1e9)), time.perf_counter()
        reps = int(cfg.get("reps", 5))
        min_reps = int(cfg.get("min_reps", 1))
        for i in range(reps):
            t0 = time.perf_counter()
            run()
            times.append((time.perf_counter() - t0) * 1000.0)
            if i + 1 >= min_reps and time.perf_counter() - start > budget:
                break
        out["times_ms"] = times
        out["median_ms"] = float(np.median(times))
        out["check"] = check()
    else:
        run()
        gc.collect()
        before = status_kb("VmRSS")
        exact = reset_hwm()
        run()
        if exact:
            peak = status_kb("VmHWM")
            out["peak_method"] = "VmHWM after clear_refs"
        else:
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            out["peak_method"] = "ru_maxrss (whole process)"
        out["rss_before_mb"] = before / 1024.0 if before is not None else None
        out["peak_rss_mb"] = peak / 1024.0 if peak is not None else None
        out["peak_growth_mb"] = (peak - before) / 1024.0 if (peak is not None and before is not None) else None
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
