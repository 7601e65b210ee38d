#!/usr/bin/python3
"""Independent PyTorch reference for wse weight streaming.

Usage: /usr/bin/python3 tests/torch_reference.py DIR

DIR holds
  model.json   the model spec, as wse::stream::to_json writes it
  weights.bin  fp32 little-endian, every parameter tensor concatenated in the spec's order
  tokens.bin   int32 little-endian, [steps, batch, seq + 1]; inputs [:, :, :-1], targets [:, :, 1:]
  config.json  {"steps", "batch", "seq", "optimizer": "sgd" | "adamw",
                "lr", "momentum", "weight_decay"            (sgd)
                "lr", "betas": [b1, b2], "eps", "weight_decay"  (adamw)}
  tensors.txt  optional: "name rows cols" per line; when present it must equal the tensor list
               this script derives from the spec on its own.

and receives out.bin (fp32 little-endian): the mean cross-entropy loss before each of the
`steps` optimizer steps, then the gradient of every tensor at the first step, then every tensor
after the last step (both in the spec's tensor order).

The model is written here from the spec's description only (it shares no code with the C++):
decoder-only transformer, linear layers y = x W + b with W stored [in, out].
"""
import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F


def param(*shape):
    return torch.nn.Parameter(torch.zeros(*shape, dtype=torch.float32))


class Linear(torch.nn.Module):
    def __init__(self, n_in, n_out, bias):
        super().__init__()
        self.weight = param(n_in, n_out)
        self.bias = param(n_out) if bias else None

    def forward(self, x):
        y = x @ self.weight
        return y + self.bias if self.bias is not None else y


class Norm(torch.nn.Module):
    def __init__(self, d, eps):
        super().__init__()
        self.weight = param(d)
        self.bias = param(d)
        self.eps = eps

    def forward(self, x):
        return F.layer_norm(x, (x.shape[-1],), self.weight, self.bias, self.eps)


def apply_rotary(x, dims, style, base):
    """x: [batch, heads, seq, head_dim]; rotates the first `dims` features of each head."""
    seq = x.shape[2]
    freq = 1.0 / (base ** (torch.arange(0, dims, 2, dtype=torch.float64) / dims))  # [dims/2]
    angle = torch.arange(seq, dtype=torch.float64)[:, None] * freq[None, :]  # [seq, dims/2]
    cos = torch.cos(angle).to(torch.float32)
    sin = torch.sin(angle).to(torch.float32)
    part, rest = x[..., :dims], x[..., dims:]
    if style == "interleaved":  # pairs (0,1), (2,3), ...
        a, b = part[..., 0::2], part[..., 1::2]
        rotated = torch.stack((a * cos - b * sin, a * sin + b * cos), dim=-1).flatten(-2)
    elif style == "half":  # pairs (i, i + dims/2)
        a, b = part[..., : dims // 2], part[..., dims // 2:]
        rotated = torch.cat((a * cos - b * sin, a * sin + b * cos), dim=-1)
    else:
        raise ValueError("unknown rotary_style " + style)
    return torch.cat((rotated, rest), dim=-1)


class Attention(torch.nn.Module):
    def __init__(self, spec, layer):
        super().__init__()
        d = spec["d_model"]
        self.heads = spec["heads"]
        self.head_dim = d // self.heads
        self.q = Linear(d, d, spec["qkv_bias"])
        self.k = Linear(d, d, spec["qkv_bias"])
        self.v = Linear(d, d, spec["qkv_bias"])
        self.out = Linear(d, d, spec["attn_out_bias"])
        self.rotary = spec["rotary_dims"] if spec["positions"] == "rotary" else 0
        self.style = spec["rotary_style"]
        self.base = float(spec.get("rotary_base", 10000.0))
        self.scale = spec["scale_attention"]
        kind = spec["local_layers"]
        local = spec["local_window"] > 0 and (kind == "all" or (kind == "odd" and layer % 2 == 1))
        self.window = spec["local_window"] if local else 0

    def split(self, x):
        b, s, _ = x.shape
        return x.view(b, s, self.heads, self.head_dim).transpose(1, 2)  # [b, h, s, hd]

    def forward(self, x):
        b, s, d = x.shape
        q, k, v = self.split(self.q(x)), self.split(self.k(x)), self.split(self.v(x))
        if self.rotary:
            q = apply_rotary(q, self.rotary, self.style, self.base)
            k = apply_rotary(k, self.rotary, self.style, self.base)
        scores = q @ k.transpose(-1, -2)
        if self.scale:
            scores = scores / math.sqrt(self.head_dim)
        i = torch.arange(s)[:, None]
        j = torch.arange(s)[None, :]
        allowed = j <= i
        if self.window:
            allowed = allowed & (i - j < self.window)
        scores = scores.masked_fill(~allowed, float("-inf"))
        ctx = torch.softmax(scores, dim=-1) @ v  # [b, h, s, hd]
        return self.out(ctx.transpose(1, 2).reshape(b, s, d))


class MLP(torch.nn.Module):
    def __init__(self, spec):
        super().__init__()
        self.fc = Linear(spec["d_model"], spec["d_ff"], spec["mlp_bias"])
        self.proj = Linear(spec["d_ff"], spec["d_model"], spec["mlp_bias"])
        self.approximate = {"tanh": "tanh", "erf": "none"}[spec["gelu"]]

    def forward(self, x):
        return self.proj(F.gelu(self.fc(x), approximate=self.approximate))


class Block(torch.nn.Module):
    def __init__(self, spec, layer):
        super().__init__()
        eps = float(spec["layer_norm_eps"])
        self.residual = spec["residual"]
        self.ln1 = Norm(spec["d_model"], eps)
        self.attn = Attention(spec, layer)
        self.ln2 = Norm(spec["d_model"], eps) if self.residual != "parallel_shared" else None
        self.mlp = MLP(spec)

    def forward(self, x):
        if self.residual == "sequential":
            x = x + self.attn(self.ln1(x))
            return x + self.mlp(self.ln2(x))
        if self.residual == "parallel_shared":
            h = self.ln1(x)
            return x + self.attn(h) + self.mlp(h)
        if self.residual == "parallel":
            return x + self.attn(self.ln1(x)) + self.mlp(self.ln2(x))
        raise ValueError("unknown residual " + self.residual)


class Transformer(torch.nn.Module):
    def __init__(self, spec):
        super().__init__()
        self.spec = spec
        d, vocab = spec["d_model"], spec["vocab"]
        self.wte = param(vocab, d)
        self.wpe = param(spec["context"], d) if spec["positions"] == "learned" else None
        self.blocks = torch.nn.ModuleList([Block(spec, i) for i in range(spec["layers"])])
        self.lnf = Norm(d, float(spec["layer_norm_eps"]))
        self.head = None if spec["tied_head"] else Linear(d, vocab, spec["head_bias"])

    def forward(self, tokens):  # [batch, seq] int64 -> logits [batch, seq, vocab]
        x = self.wte[tokens]
        if self.wpe is not None:
            x = x + self.wpe[: tokens.shape[1]][None, :, :]
        for block in self.blocks:
            x = block(x)
        x = self.lnf(x)
        return x @ self.wte.t() if self.head is None else self.head(x)

    def named_tensors(self):
        """(name, parameter, rows, cols) in the spec's tensor order."""
        s = self.spec
        d, out = s["d_model"], []

        def add(name, p, rows, cols):
            out.append((name, p, rows, cols))

        def add_linear(prefix, lin, n_in, n_out):
            add(prefix + ".weight", lin.weight, n_in, n_out)
            if lin.bias is not None:
                add(prefix + ".bias", lin.bias, 1, n_out)

        def add_norm(prefix, norm):
            add(prefix + ".weight", norm.weight, 1, d)
            add(prefix + ".bias", norm.bias, 1, d)

        add("wte", self.wte, s["vocab"], d)
        if self.wpe is not None:
            add("wpe", self.wpe, s["context"], d)
        for i, b in enumerate(self.blocks):
            p = "h.%d." % i
            add_norm(p + "ln1", b.ln1)
            for name in ("q", "k", "v", "out"):
                add_linear(p + "attn." + name, getattr(b.attn, name), d, d)
            if b.ln2 is not None:
                add_norm(p + "ln2", b.ln2)
            add_linear(p + "mlp.fc", b.mlp.fc, d, s["d_ff"])
            add_linear(p + "mlp.proj", b.mlp.proj, s["d_ff"], d)
        add_norm("lnf", self.lnf)
        if self.head is not None:
            add_linear("head", self.head, d, s["vocab"])
        return out


def main(directory):
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(0)

    def path(name):
        return os.path.join(directory, name)

    with open(path("model.json")) as f:
        spec = json.load(f)
    with open(path("config.json")) as f:
        cfg = json.load(f)

    model = Transformer(spec)
    tensors = model.named_tensors()
    if os.path.exists(path("tensors.txt")):
        with open(path("tensors.txt")) as f:
            listed = [tuple(line.split()) for line in f if line.strip()]
        mine = [(n, str(r), str(c)) for n, _, r, c in tensors]
        if listed != mine:
            for a, b in zip(listed + [None] * len(mine), mine + [None] * len(listed)):
                if a != b:
                    sys.exit("torch_reference: tensor list differs: C++ has %s, this script %s" % (a, b))
    n_params = sum(r * c for _, _, r, c in tensors)
    flat = np.fromfile(path("weights.bin"), dtype="<f4")
    if flat.size != n_params:
        sys.exit("torch_reference: weights.bin holds %d floats, the spec needs %d" % (flat.size, n_params))
    offset = 0
    with torch.no_grad():
        for _, p, r, c in tensors:
            p.copy_(torch.from_numpy(flat[offset: offset + r * c].copy()).view(p.shape))
            offset += r * c

    steps, batch, seq = int(cfg["steps"]), int(cfg["batch"]), int(cfg["seq"])
    tokens = np.fromfile(path("tokens.bin"), dtype="<i4")
    if tokens.size != steps * batch * (seq + 1):
        sys.exit("torch_reference: tokens.bin holds %d ids, expected steps*batch*(seq+1) = %d"
                 % (tokens.size, steps * batch * (seq + 1)))
    tokens = torch.from_numpy(tokens.astype(np.int64)).view(steps, batch, seq + 1)

    params = [p for _, p, _, _ in tensors]
    if cfg["optimizer"] == "sgd":
        opt = torch.optim.SGD(params, lr=cfg["lr"], momentum=cfg.get("momentum", 0.0),
                              weight_decay=cfg.get("weight_decay", 0.0))
    elif cfg["optimizer"] == "adamw":
        opt = torch.optim.AdamW(params, lr=cfg["lr"], betas=tuple(cfg.get("betas", (0.9, 0.999))),
                                eps=cfg.get("eps", 1e-8), weight_decay=cfg.get("weight_decay", 0.01))
    else:
        sys.exit("torch_reference: unknown optimizer " + str(cfg["optimizer"]))

    losses, first_grads = [], None
    for step in range(steps):
        opt.zero_grad()
        inputs, targets = tokens[step, :, :-1], tokens[step, :, 1:]
        logits = model(inputs)
        loss = F.cross_entropy(logits.reshape(-1, spec["vocab"]), targets.reshape(-1))
        loss.backward()
        losses.append(loss.item())
        if step == 0:
            first_grads = [torch.zeros_like(p) if p.grad is None else p.grad.detach().clone() for p in params]
        opt.step()

    parts = [np.asarray(losses, dtype="<f4")]
    parts += [g.reshape(-1).numpy().astype("<f4") for g in first_grads]
    parts += [p.detach().reshape(-1).numpy().astype("<f4") for p in params]
    np.concatenate(parts).tofile(path("out.bin"))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
