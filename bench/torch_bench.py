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


# ------------------------------------------------------------------ FLUX twin
# A compact, faithful reference FLUX (black-forest-labs/flux src/flux/{model,modules/layers,
# math,sampling}.py), with the reference module structure so its state_dict names are the reference
# names: the TypeScript side passes the weights by those names and load_state_dict(strict=True)
# rejects any mismatch. A benchmark twin only. Differences from the reference: no einops (reshape /
# permute), and attention written out (torch 1.13 has no F.scaled_dot_product_attention).


def flux_timestep_embedding(t, dim, max_period=10000, time_factor=1000.0):
    t = time_factor * t
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(start=0, end=half, dtype=torch.float32) / half)
    args = t[:, None].float() * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
    return emb.to(t)


def flux_rope(pos, dim, theta):
    scale = torch.arange(0, dim, 2, dtype=torch.float64) / dim
    omega = 1.0 / (theta ** scale)
    out = torch.einsum("...n,d->...nd", pos.double(), omega)
    out = torch.stack([torch.cos(out), -torch.sin(out), torch.sin(out), torch.cos(out)], dim=-1)
    return out.reshape(*out.shape[:-1], 2, 2).float()


def flux_apply_rope(xq, xk, freqs_cis):
    xq_ = xq.float().reshape(*xq.shape[:-1], -1, 1, 2)
    xk_ = xk.float().reshape(*xk.shape[:-1], -1, 1, 2)
    xq_out = freqs_cis[..., 0] * xq_[..., 0] + freqs_cis[..., 1] * xq_[..., 1]
    xk_out = freqs_cis[..., 0] * xk_[..., 0] + freqs_cis[..., 1] * xk_[..., 1]
    return xq_out.reshape(*xq.shape).type_as(xq), xk_out.reshape(*xk.shape).type_as(xk)


def flux_attention(q, k, v, pe):
    q, k = flux_apply_rope(q, k, pe)
    att = torch.softmax(torch.matmul(q, k.transpose(-1, -2)) * (1.0 / math.sqrt(q.shape[-1])), dim=-1)
    x = torch.matmul(att, v)  # B H L D
    return x.permute(0, 2, 1, 3).reshape(x.shape[0], x.shape[2], -1)


def flux_split_qkv(qkv, heads):
    """rearrange(qkv, "B L (K H D) -> K B H L D", K=3, H=heads)"""
    b, l, c = qkv.shape
    return qkv.reshape(b, l, 3, heads, c // 3 // heads).permute(2, 0, 3, 1, 4)


class FluxEmbedND(torch.nn.Module):
    def __init__(self, dim, theta, axes_dim):
        super().__init__()
        self.dim, self.theta, self.axes_dim = dim, theta, axes_dim

    def forward(self, ids):
        n_axes = ids.shape[-1]
        emb = torch.cat([flux_rope(ids[..., i], self.axes_dim[i], self.theta) for i in range(n_axes)], dim=-3)
        return emb.unsqueeze(1)


class FluxMLPEmbedder(torch.nn.Module):
    def __init__(self, in_dim, hidden_dim):
        super().__init__()
        self.in_layer = torch.nn.Linear(in_dim, hidden_dim, bias=True)
        self.silu = torch.nn.SiLU()
        self.out_layer = torch.nn.Linear(hidden_dim, hidden_dim, bias=True)

    def forward(self, x):
        return self.out_layer(self.silu(self.in_layer(x)))


class FluxRMSNorm(torch.nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(dim))

    def forward(self, x):
        x_dtype = x.dtype
        x = x.float()
        rrms = torch.rsqrt(torch.mean(x ** 2, dim=-1, keepdim=True) + 1e-6)
        return (x * rrms).to(dtype=x_dtype) * self.scale


class FluxQKNorm(torch.nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.query_norm = FluxRMSNorm(dim)
        self.key_norm = FluxRMSNorm(dim)

    def forward(self, q, k, v):
        return self.query_norm(q).to(v), self.key_norm(k).to(v)


class FluxSelfAttention(torch.nn.Module):
    def __init__(self, dim, num_heads, qkv_bias):
        super().__init__()
        self.num_heads = num_heads
        self.qkv = torch.nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.norm = FluxQKNorm(dim // num_heads)
        self.proj = torch.nn.Linear(dim, dim)


class FluxModulation(torch.nn.Module):
    def __init__(self, dim, double):
        super().__init__()
        self.multiplier = 6 if double else 3
        self.lin = torch.nn.Linear(dim, self.multiplier * dim, bias=True)

    def forward(self, vec, mask=None):
        out = self.lin(F.silu(vec))
        if mask is not None:  # mce-iter: MCE's txt_mod mask on the modulation output, before the split
            out = out * mask
        out = out[:, None, :].chunk(self.multiplier, dim=-1)
        return out[:3], (out[3:] if self.multiplier == 6 else None)  # (shift, scale, gate) each


def flux_mlp(hidden, mlp_hidden):
    return torch.nn.Sequential(
        torch.nn.Linear(hidden, mlp_hidden, bias=True),
        torch.nn.GELU(approximate="tanh"),
        torch.nn.Linear(mlp_hidden, hidden, bias=True),
    )


def flux_mlp_masked(mlp, x, mask):
    """The FFN with MCE's mask on its hidden units (after the GELU), or plain without one."""
    return mlp(x) if mask is None else mlp[2](mlp[1](mlp[0](x)) * mask)


class FluxDoubleStreamBlock(torch.nn.Module):
    def __init__(self, hidden, num_heads, mlp_ratio, qkv_bias):
        super().__init__()
        m = int(hidden * mlp_ratio)
        self.num_heads = num_heads
        self.img_mod = FluxModulation(hidden, True)
        self.img_norm1 = torch.nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.img_attn = FluxSelfAttention(hidden, num_heads, qkv_bias)
        self.img_norm2 = torch.nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.img_mlp = flux_mlp(hidden, m)
        self.txt_mod = FluxModulation(hidden, True)
        self.txt_norm1 = torch.nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.txt_attn = FluxSelfAttention(hidden, num_heads, qkv_bias)
        self.txt_norm2 = torch.nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.txt_mlp = flux_mlp(hidden, m)

    def forward(self, img, txt, vec, pe, masks=None):
        m = masks or {}
        (i_shift1, i_scale1, i_gate1), (i_shift2, i_scale2, i_gate2) = self.img_mod(vec)
        (t_shift1, t_scale1, t_gate1), (t_shift2, t_scale2, t_gate2) = self.txt_mod(vec, m.get("txt_mod"))
        img_modulated = (1 + i_scale1) * self.img_norm1(img) + i_shift1
        img_q, img_k, img_v = flux_split_qkv(self.img_attn.qkv(img_modulated), self.num_heads)
        img_q, img_k = self.img_attn.norm(img_q, img_k, img_v)
        txt_modulated = (1 + t_scale1) * self.txt_norm1(txt) + t_shift1
        txt_q, txt_k, txt_v = flux_split_qkv(self.txt_attn.qkv(txt_modulated), self.num_heads)
        txt_q, txt_k = self.txt_attn.norm(txt_q, txt_k, txt_v)
        q = torch.cat((txt_q, img_q), dim=2)
        k = torch.cat((txt_k, img_k), dim=2)
        v = torch.cat((txt_v, img_v), dim=2)
        attn = flux_attention(q, k, v, pe)
        txt_attn, img_attn = attn[:, : txt.shape[1]], attn[:, txt.shape[1] :]
        img = img + i_gate1 * self.img_attn.proj(img_attn)
        img = img + i_gate2 * flux_mlp_masked(self.img_mlp, (1 + i_scale2) * self.img_norm2(img) + i_shift2, m.get("img_mlp"))
        txt = txt + t_gate1 * self.txt_attn.proj(txt_attn)
        txt = txt + t_gate2 * flux_mlp_masked(self.txt_mlp, (1 + t_scale2) * self.txt_norm2(txt) + t_shift2, m.get("txt_mlp"))
        return img, txt


class FluxSingleStreamBlock(torch.nn.Module):
    def __init__(self, hidden, num_heads, mlp_ratio):
        super().__init__()
        self.hidden_size = hidden
        self.num_heads = num_heads
        self.mlp_hidden_dim = int(hidden * mlp_ratio)
        self.linear1 = torch.nn.Linear(hidden, hidden * 3 + self.mlp_hidden_dim)
        self.linear2 = torch.nn.Linear(hidden + self.mlp_hidden_dim, hidden)
        self.norm = FluxQKNorm(hidden // num_heads)
        self.pre_norm = torch.nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.mlp_act = torch.nn.GELU(approximate="tanh")
        self.modulation = FluxModulation(hidden, False)

    def forward(self, x, vec, pe):
        (shift, scale, gate), _ = self.modulation(vec)
        x_mod = (1 + scale) * self.pre_norm(x) + shift
        qkv, mlp = torch.split(self.linear1(x_mod), [3 * self.hidden_size, self.mlp_hidden_dim], dim=-1)
        q, k, v = flux_split_qkv(qkv, self.num_heads)
        q, k = self.norm(q, k, v)
        attn = flux_attention(q, k, v, pe)
        output = self.linear2(torch.cat((attn, self.mlp_act(mlp)), 2))
        return x + gate * output


class FluxLastLayer(torch.nn.Module):
    def __init__(self, hidden, out_channels):
        super().__init__()
        self.norm_final = torch.nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.linear = torch.nn.Linear(hidden, out_channels, bias=True)
        self.adaLN_modulation = torch.nn.Sequential(torch.nn.SiLU(), torch.nn.Linear(hidden, 2 * hidden, bias=True))

    def forward(self, x, vec):
        shift, scale = self.adaLN_modulation(vec).chunk(2, dim=1)
        x = (1 + scale[:, None, :]) * self.norm_final(x) + shift[:, None, :]
        return self.linear(x)


class Flux(torch.nn.Module):
    def __init__(self, p):
        super().__init__()
        self.p = p
        h = p["hidden_size"]
        self.pe_embedder = FluxEmbedND(h // p["num_heads"], p["theta"], p["axes_dim"])
        self.img_in = torch.nn.Linear(p["in_channels"], h, bias=True)
        self.time_in = FluxMLPEmbedder(256, h)
        self.vector_in = FluxMLPEmbedder(p["vec_in_dim"], h)
        self.guidance_in = FluxMLPEmbedder(256, h) if p["guidance_embed"] else torch.nn.Identity()
        self.txt_in = torch.nn.Linear(p["context_in_dim"], h)
        self.double_blocks = torch.nn.ModuleList(
            [FluxDoubleStreamBlock(h, p["num_heads"], p["mlp_ratio"], p["qkv_bias"]) for _ in range(p["depth"])])
        self.single_blocks = torch.nn.ModuleList(
            [FluxSingleStreamBlock(h, p["num_heads"], p["mlp_ratio"]) for _ in range(p["depth_single_blocks"])])
        self.final_layer = FluxLastLayer(h, p["out_channels"])

    def rope(self, img_ids, txt_ids):
        return self.pe_embedder(torch.cat((txt_ids, img_ids), dim=1))

    def forward(self, img, img_ids, txt, txt_ids, timesteps, y, guidance=None, pe=None, masks=None):
        """masks (mce-iter): {"double_blocks.i.img_mlp" | ".txt_mlp" | ".txt_mod": tensor}, MCE's hook points."""
        img = self.img_in(img)
        vec = self.time_in(flux_timestep_embedding(timesteps, 256))
        if self.p["guidance_embed"]:
            vec = vec + self.guidance_in(flux_timestep_embedding(guidance, 256))
        vec = vec + self.vector_in(y)
        txt = self.txt_in(txt)
        if pe is None:
            pe = self.rope(img_ids, txt_ids)
        for i, block in enumerate(self.double_blocks):
            pre = f"double_blocks.{i}."
            bm = {k[len(pre):]: v for k, v in (masks or {}).items() if k.startswith(pre)}
            img, txt = block(img, txt, vec, pe, bm)
        img = torch.cat((txt, img), 1)
        for block in self.single_blocks:
            img = block(img, vec, pe)
        img = img[:, txt.shape[1] :, ...]
        return self.final_layer(img, vec)


FLUX_NON_WEIGHTS = {"img", "timesteps", "x0", "target", "txt", "y", "u"}


def flux_setup(a, p):
    """The twin with the TypeScript side's weights (strict: every reference name, nothing else), and the
    position ids: img_ids (0, row, col) of the packed grid, txt_ids zeros (reference `prepare`)."""
    model = Flux(p)
    model.load_state_dict({k: v for k, v in a.items() if k not in FLUX_NON_WEIGHTS}, strict=True)
    B, gh, gw = p["batch"], p["grid_h"], p["grid_w"]
    img_ids = torch.zeros(gh, gw, 3)
    img_ids[..., 1] = img_ids[..., 1] + torch.arange(gh)[:, None]
    img_ids[..., 2] = img_ids[..., 2] + torch.arange(gw)[None, :]
    img_ids = img_ids.reshape(1, gh * gw, 3).repeat(B, 1, 1)
    txt_ids = torch.zeros(B, p["txt_len"], 3)
    return model, img_ids, txt_ids


def flux_fwd(a, p):
    """One forward (inference) at per-sample timesteps; rope computed inside, as the reference does."""
    model, img_ids, txt_ids = flux_setup(a, p)
    img, txt, y, ts = a["img"], a["txt"], a["y"], a["timesteps"]

    def run():
        with torch.no_grad():
            return model(img=img, img_ids=img_ids, txt=txt, txt_ids=txt_ids, timesteps=ts, y=y)

    def check():
        out = run()
        return {"out_norm": fro(out), "out_l1": float(out.double().abs().sum())}

    return run, check


def flux_ckpt(a, p):
    """Euler steps of the reference `denoise` (img + (t_prev - t_curr) * pred) over the schedule the
    TypeScript side computed, loss MSE(final, target); gradients for x0 and every weight through every
    step by checkpointed backprop: a no-grad forward keeping each x_k, then a reverse loop that recomputes
    one step with autograd and takes its vjp w.r.t. (x_k, weights) -- as src/engine/checkpoint.ts."""
    model, img_ids, txt_ids = flux_setup(a, p)
    names = [k for k, _ in model.named_parameters()]
    ps = list(model.parameters())
    x0, target, txt, y = a["x0"], a["target"], a["txt"], a["y"]
    schedule = [float(t) for t in p["schedule"]]
    n = len(schedule) - 1
    B = x0.shape[0]
    with torch.no_grad():
        pe = model.rope(img_ids, txt_ids)  # fixed across steps, like fluxDenoiser's tables

    def step(x, k):
        t_curr, t_prev = schedule[k], schedule[k + 1]
        t_vec = torch.full((B,), t_curr, dtype=x.dtype)
        pred = model(img=x, img_ids=img_ids, txt=txt, txt_ids=txt_ids, timesteps=t_vec, y=y, pe=pe)
        return x + (t_prev - t_curr) * pred

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
                out = step(xk, k)
                gs = torch.autograd.grad(out, [xk] + ps, g)
            g = gs[0]
            for i in range(len(ps)):
                acc[i] += gs[i + 1]
        return loss, xn, g, acc

    def check():
        loss, xn, gx, acc = run()
        gw = dict(zip(names, acc))
        last = p["depth_single_blocks"] - 1
        out = {
            "loss": float(loss),
            "final_norm": fro(xn),
            "grad_x0": fro(gx),
            "grad_all_weights": math.sqrt(sum(fro(t) ** 2 for t in acc)),
        }
        for k in ["img_in.weight", "time_in.in_layer.weight", "double_blocks.0.img_attn.qkv.weight",
                  "double_blocks.0.txt_mod.lin.weight", f"single_blocks.{last}.linear1.weight",
                  "final_layer.linear.weight"]:
            out["grad_" + k] = fro(gw[k])
        return out

    return run, check


def checkpointed_final_grad(step, x0, n, logits, loss_of):
    """MCE's backprop through every sampling step with step-wise recomputation (the engine's
    checkpointed backprop): the forward keeps only each step's input, then each step is recomputed
    under autograd on the way back. Returns the loss, the final output and d loss / d logits."""
    with torch.no_grad():
        xs = [x0]
        for k in range(n):
            xs.append(step(xs[k], k, logits))
    xn = xs[n].detach().requires_grad_(True)
    with torch.enable_grad():
        loss = loss_of(xn)
        g = torch.autograd.grad(loss, xn)[0]
    acc = [torch.zeros_like(q) for q in logits]
    for k in range(n - 1, -1, -1):
        xk = xs[k].detach().requires_grad_(True)
        with torch.enable_grad():
            out = step(xk, k, logits)
            gs = torch.autograd.grad(out, [xk] + logits, g)
        g = gs[0]
        for i in range(len(logits)):
            acc[i] += gs[i + 1]
    return loss.detach(), xs[n], acc


def mce_iter(a, p):
    """One MCE iteration (src/bench/workloads/mce-iter.ts; erase/mce/objective.ts objectiveGrad): items
    p0..p3 (erase, erase, preserve, preserve) from their noises x0, CFG inside every Euler step (the batch
    doubled with the "" row: v = v_u + cfg (v_c - v_u)), hard-concrete masks from logits at init_logit
    with the uniform noise u[k] of step k (the same draw in the recompute), loss sum_i w_i MSE(final_i,
    target_i), w = 1/n_erase, beta/n_preserve; gradients for the mask logits by checkpointed backprop."""
    model, _, _ = flux_setup(a, {**p, "batch": 2 * len(p["items"])})
    for q in model.parameters():
        q.requires_grad_(False)
    x0, target, u = a["x0"], a["target"], a["u"]
    n_items = len(p["items"])
    schedule = [float(t) for t in p["schedule"]]
    n = len(schedule) - 1
    cfg, beta = float(p["cfg"]), float(p["beta"])
    hc = p["hard_concrete"]
    specs = p["masks"]
    # Text rows: p0..p3 then ""; the doubled batch is [cond p0..p3; uncond "" x 4].
    rows = list(range(n_items)) + [n_items] * n_items
    txt, y = a["txt"][rows], a["y"][rows]
    gh, gw = p["grid_h"], p["grid_w"]
    img_ids = torch.zeros(gh, gw, 3)
    img_ids[..., 1] = img_ids[..., 1] + torch.arange(gh)[:, None]
    img_ids[..., 2] = img_ids[..., 2] + torch.arange(gw)[None, :]
    img_ids = img_ids.reshape(1, gh * gw, 3).repeat(2 * n_items, 1, 1)
    txt_ids = torch.zeros(2 * n_items, p["txt_len"], 3)
    with torch.no_grad():
        pe = model.rope(img_ids, txt_ids)
    n_erase = sum(1 for k in p["items"] if k == "erase")
    w = torch.tensor([1.0 / n_erase if k == "erase" else beta / (n_items - n_erase) for k in p["items"]])
    # Logistic noise log(u + eps) - log(1 - u + eps), in float64 then float32 (as the TypeScript side).
    ud = u.double()
    noise = (torch.log(ud + hc["eps"]) - torch.log(1 - ud + hc["eps"])).float()
    offs = np.cumsum([0] + [m["size"] for m in specs])
    logits = [torch.full((m["size"],), float(p["init_logit"]), requires_grad=True) for m in specs]

    def masks_at(k, ls):
        out = {}
        for i, m in enumerate(specs):
            z = ls[i] + noise[k, offs[i]:offs[i + 1]]
            s = torch.sigmoid(z / hc["beta"])
            out[m["name"]] = torch.clamp(s * (hc["zeta"] - hc["gamma"]) + hc["gamma"], 0, 1)
        return out

    def step(x, k, ls):
        t_curr, t_prev = schedule[k], schedule[k + 1]
        xx = torch.cat([x, x], 0)
        t_vec = torch.full((2 * n_items,), t_curr, dtype=x.dtype)
        v = model(img=xx, img_ids=img_ids, txt=txt, txt_ids=txt_ids, timesteps=t_vec, y=y, pe=pe, masks=masks_at(k, ls))
        vc, vu = v[:n_items], v[n_items:]
        return x + (t_prev - t_curr) * (vu + (vc - vu) * cfg)

    def item_mse(f):
        return ((f - target) ** 2).reshape(n_items, -1).mean(1)

    def run():
        return checkpointed_final_grad(step, x0, n, logits, lambda xn: (item_mse(xn) * w).sum())

    def check():
        loss, xn, acc = run()
        mse = item_mse(xn)
        erase = float(sum(mse[i] * w[i] for i in range(n_items) if p["items"][i] == "erase"))
        preserve = float(sum(mse[i] * w[i] for i in range(n_items) if p["items"][i] != "erase")) / beta
        group = lambda key: math.sqrt(sum(fro(t) ** 2 for t, m in zip(acc, specs) if m["name"].endswith(key)))
        return {
            "loss": float(loss),
            "erase_mse": erase,
            "preserve_mse": preserve,
            "grad_all_logits": math.sqrt(sum(fro(t) ** 2 for t in acc)),
            "grad_ffn": math.sqrt(group("img_mlp") ** 2 + group("txt_mlp") ** 2),
            "grad_txt_mod": group("txt_mod"),
            "grad_" + specs[0]["name"]: fro(acc[0]),
            "grad_" + specs[-1]["name"]: fro(acc[-1]),
        }

    return run, check


# ------------------------------------------------------------------ UNet (sd-emoji) and its MCE iteration
# A plain-torch twin of diffusers' UNet2DConditionModel for the SD 1.x / 2.x blocks (src/models/unet/):
# module names as diffusers', so load_state_dict(strict=True) proves the TypeScript side's names match.
# Masks (an optional dict by hook-point name, models/unet/masks.ts) multiply the attention to_q / to_k /
# to_v / to_out outputs, the per-head attention output and the GEGLU hidden units.


def unet_timestep_embedding(t, dim, flip_sin_to_cos, freq_shift, max_period=10000):
    """diffusers get_timestep_embedding (float32 frequencies)."""
    half = dim // 2
    exponent = -math.log(max_period) * torch.arange(0, half, dtype=torch.float32) / (half - freq_shift)
    emb = t[:, None].float() * torch.exp(exponent)[None, :]
    emb = torch.cat([torch.sin(emb), torch.cos(emb)], dim=-1)
    if flip_sin_to_cos:
        emb = torch.cat([emb[:, half:], emb[:, :half]], dim=-1)
    return emb


def masked(x, masks, name):
    m = masks.get(name)
    return x if m is None else x * m


class UnetAttention(torch.nn.Module):
    def __init__(self, name, dim, ctx_dim, heads):
        super().__init__()
        self.name, self.heads = name, heads
        self.to_q = torch.nn.Linear(dim, dim, bias=False)
        self.to_k = torch.nn.Linear(ctx_dim, dim, bias=False)
        self.to_v = torch.nn.Linear(ctx_dim, dim, bias=False)
        self.to_out = torch.nn.ModuleList([torch.nn.Linear(dim, dim), torch.nn.Dropout(0.0)])

    def forward(self, x, ctx, masks):
        src = x if ctx is None else ctx
        n = self.name
        q = masked(self.to_q(x), masks, n + ".to_q")
        k = masked(self.to_k(src), masks, n + ".to_k")
        v = masked(self.to_v(src), masks, n + ".to_v")
        B, L, D = q.shape
        h, d = self.heads, D // self.heads
        split = lambda t: t.reshape(B, -1, h, d).transpose(1, 2)
        att = torch.softmax(split(q) @ split(k).transpose(-1, -2) * (1.0 / math.sqrt(d)), dim=-1)
        o = att @ split(v)
        hm = masks.get(n + ".heads")
        if hm is not None:
            o = o * hm.reshape(1, h, 1, 1)
        o = o.transpose(1, 2).reshape(B, L, D)
        return masked(self.to_out[0](o), masks, n + ".to_out")


class UnetGEGLU(torch.nn.Module):
    def __init__(self, dim, inner):
        super().__init__()
        self.proj = torch.nn.Linear(dim, 2 * inner)


class UnetFeedForward(torch.nn.Module):
    def __init__(self, name, dim):
        super().__init__()
        self.name = name
        self.net = torch.nn.ModuleList([UnetGEGLU(dim, 4 * dim), torch.nn.Dropout(0.0), torch.nn.Linear(4 * dim, dim)])

    def forward(self, x, masks):
        hidden, gate = self.net[0].proj(x).chunk(2, dim=-1)
        return self.net[2](masked(hidden * F.gelu(gate), masks, self.name + ".hidden"))


class UnetBasicTransformerBlock(torch.nn.Module):
    def __init__(self, name, dim, ctx_dim, heads):
        super().__init__()
        self.norm1 = torch.nn.LayerNorm(dim)
        self.attn1 = UnetAttention(name + ".attn1", dim, dim, heads)
        self.norm2 = torch.nn.LayerNorm(dim)
        self.attn2 = UnetAttention(name + ".attn2", dim, ctx_dim, heads)
        self.norm3 = torch.nn.LayerNorm(dim)
        self.ff = UnetFeedForward(name + ".ff", dim)

    def forward(self, x, ctx, masks):
        h = self.attn1(self.norm1(x), None, masks) + x
        h = self.attn2(self.norm2(h), ctx, masks) + h
        return self.ff(self.norm3(h), masks) + h


class UnetTransformer2D(torch.nn.Module):
    def __init__(self, name, c, p, heads):
        super().__init__()
        self.norm = torch.nn.GroupNorm(p["norm_num_groups"], c, eps=1e-6)
        self.proj_in = torch.nn.Linear(c, c)
        self.transformer_blocks = torch.nn.ModuleList(
            [UnetBasicTransformerBlock(f"{name}.transformer_blocks.{k}", c, p["cross_attention_dim"], heads)
             for k in range(p["transformer_layers_per_block"])])
        self.proj_out = torch.nn.Linear(c, c)

    def forward(self, x, ctx, masks):
        B, C, H, W = x.shape
        h = self.norm(x).permute(0, 2, 3, 1).reshape(B, H * W, C)
        h = self.proj_in(h)
        for blk in self.transformer_blocks:
            h = blk(h, ctx, masks)
        h = self.proj_out(h)
        return h.reshape(B, H, W, C).permute(0, 3, 1, 2) + x


class UnetResnet(torch.nn.Module):
    def __init__(self, cin, cout, temb, groups, eps):
        super().__init__()
        self.norm1 = torch.nn.GroupNorm(groups, cin, eps=eps)
        self.conv1 = torch.nn.Conv2d(cin, cout, 3, padding=1)
        self.time_emb_proj = torch.nn.Linear(temb, cout)
        self.norm2 = torch.nn.GroupNorm(groups, cout, eps=eps)
        self.conv2 = torch.nn.Conv2d(cout, cout, 3, padding=1)
        self.conv_shortcut = torch.nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x, stemb):
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.time_emb_proj(stemb)[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return (x if self.conv_shortcut is None else self.conv_shortcut(x)) + h


class UnetConv(torch.nn.Module):
    """Downsample2D / Upsample2D: a module holding `conv`."""
    def __init__(self, c, stride):
        super().__init__()
        self.conv = torch.nn.Conv2d(c, c, 3, stride=stride, padding=1)


class UnetBlock(torch.nn.Module):
    """CrossAttnDownBlock2D / CrossAttnUpBlock2D (or the plain ones when `heads` is None)."""
    def __init__(self, name, p, ins, out, temb, heads, resample):
        super().__init__()
        if heads is not None:
            self.attentions = torch.nn.ModuleList([UnetTransformer2D(f"{name}.attentions.{j}", out, p, heads) for j in range(len(ins))])
        self.resnets = torch.nn.ModuleList([UnetResnet(c, out, temb, p["norm_num_groups"], p["norm_eps"]) for c in ins])
        self.cross = heads is not None
        if resample == "down":
            self.downsamplers = torch.nn.ModuleList([UnetConv(out, 2)])
        elif resample == "up":
            self.upsamplers = torch.nn.ModuleList([UnetConv(out, 1)])


class UnetMid(torch.nn.Module):
    def __init__(self, p, c, temb, heads):
        super().__init__()
        self.attentions = torch.nn.ModuleList([UnetTransformer2D("mid_block.attentions.0", c, p, heads)])
        self.resnets = torch.nn.ModuleList([UnetResnet(c, c, temb, p["norm_num_groups"], p["norm_eps"]) for _ in range(2)])


class UnetTimeEmbedding(torch.nn.Module):
    def __init__(self, c0, temb):
        super().__init__()
        self.linear_1 = torch.nn.Linear(c0, temb)
        self.linear_2 = torch.nn.Linear(temb, temb)


class Unet(torch.nn.Module):
    """UNet2DConditionModel (SD 1.x / 2.x blocks, linear projections) on NCHW samples; predicts eps."""
    def __init__(self, p, heads):
        super().__init__()
        self.p = p
        ch = p["block_out_channels"]
        n, c0, L = len(ch), ch[0], p["layers_per_block"]
        temb = 4 * c0
        self.conv_in = torch.nn.Conv2d(p["in_channels"], c0, 3, padding=1)
        self.time_embedding = UnetTimeEmbedding(c0, temb)
        down, out = [], c0
        for i in range(n):
            cin, out = out, ch[i]
            cross = p["down_block_types"][i] == "CrossAttnDownBlock2D"
            ins = [cin if j == 0 else out for j in range(L)]
            down.append(UnetBlock(f"down_blocks.{i}", p, ins, out, temb, heads[i] if cross else None, "down" if i != n - 1 else None))
        self.down_blocks = torch.nn.ModuleList(down)
        rev = list(reversed(ch))
        up, out = [], rev[0]
        for i in range(n):
            prev, out = out, rev[i]
            inp = rev[min(i + 1, n - 1)]
            ins = [(prev if j == 0 else out) + (inp if j == L else out) for j in range(L + 1)]
            cross = p["up_block_types"][i] == "CrossAttnUpBlock2D"
            up.append(UnetBlock(f"up_blocks.{i}", p, ins, out, temb, heads[n - 1 - i] if cross else None, "up" if i != n - 1 else None))
        self.up_blocks = torch.nn.ModuleList(up)
        self.mid_block = UnetMid(p, ch[-1], temb, heads[-1]) if p["mid_block_type"] else None
        self.conv_norm_out = torch.nn.GroupNorm(p["norm_num_groups"], c0, eps=p["norm_eps"])
        self.conv_out = torch.nn.Conv2d(c0, p["out_channels"], 3, padding=1)

    def forward(self, x, t, ctx, masks=None):
        masks = masks or {}
        p = self.p
        te = self.time_embedding
        emb = unet_timestep_embedding(t, p["block_out_channels"][0], p["flip_sin_to_cos"], p["freq_shift"])
        stemb = F.silu(te.linear_2(F.silu(te.linear_1(emb))))
        h = self.conv_in(x)
        skips = [h]
        for blk in self.down_blocks:
            for j, res in enumerate(blk.resnets):
                h = res(h, stemb)
                if blk.cross:
                    h = blk.attentions[j](h, ctx, masks)
                skips.append(h)
            if hasattr(blk, "downsamplers"):
                h = blk.downsamplers[0].conv(h)
                skips.append(h)
        if self.mid_block is not None:
            h = self.mid_block.resnets[0](h, stemb)
            h = self.mid_block.attentions[0](h, ctx, masks)
            h = self.mid_block.resnets[1](h, stemb)
        for blk in self.up_blocks:
            for j, res in enumerate(blk.resnets):
                h = res(torch.cat([h, skips.pop()], dim=1), stemb)
                if blk.cross:
                    h = blk.attentions[j](h, ctx, masks)
            if hasattr(blk, "upsamplers"):
                h = blk.upsamplers[0].conv(F.interpolate(h, scale_factor=2.0, mode="nearest"))
        return self.conv_out(F.silu(self.conv_norm_out(h)))


UNET_NON_WEIGHTS = {"x0", "target", "txt", "u"}


def unet_mce_iter(a, p):
    """One MCE iteration on the UNet (src/bench/workloads/unet-mce-iter.ts; erase/mce/unet.ts
    unetObjectiveGrad): items p0..p3 (erase, erase, preserve, preserve) from their noises x0, CFG inside
    every DDIM step (one forward over [x; x] with context [uncond ""; cond]: eps = eps_u + cfg (eps_c -
    eps_u)), DDIM eta 0 along the TypeScript side's plan, hard-concrete masks from the logits with the
    uniform noise u[k] of step k, loss sum_i w_i MSE(final_i, target_i); gradients for the mask logits by
    checkpointed backprop (a no-grad forward keeping each x_k, then a reverse per-step recompute)."""
    model = Unet(p["unet"], p["heads"])
    model.load_state_dict({k: v for k, v in a.items() if k not in UNET_NON_WEIGHTS}, strict=True)
    for q in model.parameters():
        q.requires_grad_(False)
    x0, target, u = a["x0"], a["target"], a["u"]
    items = p["items"]
    n_items = len(items)
    plan = p["plan"]
    n = len(plan["timesteps"])
    f32 = np.float32
    # DDIM coefficients in float32, as sampling/ddim.ts computes them.
    coef = [(float(f32(math.sqrt(at))), float(f32(math.sqrt(f32(1 - f32(at))))), float(f32(math.sqrt(ap))),
             float(f32(math.sqrt(f32(1 - f32(ap)))))) for at, ap in zip(plan["alphas"], plan["alphasPrev"])]
    cfg, beta = float(p["cfg"]), float(p["beta"])
    hc = p["hard_concrete"]
    specs = p["masks"]
    ctx = torch.cat([a["txt"][[n_items] * n_items], a["txt"][:n_items]], 0)  # [uncond x 4; p0..p3]
    n_erase = sum(1 for k in items if k == "erase")
    w = torch.tensor([1.0 / n_erase if k == "erase" else beta / (n_items - n_erase) for k in items])
    ud = u.double()
    noise = (torch.log(ud + hc["eps"]) - torch.log(1 - ud + hc["eps"])).float()
    offs = np.cumsum([0] + [m["size"] for m in specs])
    logits = [torch.full((m["size"],), float(p["init_logit"]), requires_grad=True) for m in specs]

    def masks_at(k, ls):
        out = {}
        for i, m in enumerate(specs):
            z = ls[i] + noise[k, offs[i]:offs[i + 1]]
            s = torch.sigmoid(z / hc["beta"])
            out[m["name"]] = torch.clamp(s * (hc["zeta"] - hc["gamma"]) + hc["gamma"], 0, 1)
        return out

    def step(x, k, ls):
        sa, sb, sap, sbp = coef[k]
        t_vec = torch.full((2 * n_items,), float(plan["timesteps"][k]))
        e = model(torch.cat([x, x], 0), t_vec, ctx, masks_at(k, ls))
        eu, ec = e[:n_items], e[n_items:]
        eps = eu + (ec - eu) * cfg
        x0p = (x - eps * sb) / sa
        return x0p * sap + eps * sbp

    def item_mse(f):
        return ((f - target) ** 2).reshape(n_items, -1).mean(1)

    def run():
        return checkpointed_final_grad(step, x0, n, logits, lambda xn: (item_mse(xn) * w).sum())

    def check():
        loss, xn, acc = run()
        mse = item_mse(xn)
        erase = float(sum(mse[i] * w[i] for i in range(n_items) if items[i] == "erase"))
        preserve = float(sum(mse[i] * w[i] for i in range(n_items) if items[i] != "erase")) / beta
        group = lambda keys: math.sqrt(sum(fro(t) ** 2 for t, m in zip(acc, specs) if m["name"].split(".")[-1] in keys))
        return {
            "loss": float(loss),
            "erase_mse": erase,
            "preserve_mse": preserve,
            "grad_all_logits": math.sqrt(sum(fro(t) ** 2 for t in acc)),
            "grad_ffn": group({"hidden"}),
            "grad_attn_linear": group({"to_q", "to_k", "to_v", "to_out"}),
            "grad_" + specs[0]["name"]: fro(acc[0]),
            "grad_" + specs[-1]["name"]: fro(acc[-1]),
        }

    return run, check


WORKLOADS = {"sgemm-1024": sgemm, "block-fwd-bwd": block, "euler8-ckpt": euler_ckpt,
             "flux-small-fwd": flux_fwd, "flux-small-ckpt4": flux_ckpt, "mce-iter": mce_iter,
             "unet-mce-iter": unet_mce_iter}


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
