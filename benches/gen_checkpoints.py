"""Generate the checkpoint workload for benches/checkpoints.sh.

A small residual MLP language model (token embedding tied to the output layer, eight
residual blocks) is really trained with Adam on a synthetic next-token task, in numpy,
and saved as safetensors files:

  a/fp32/step-NNNN.safetensors  every K steps of one training run, float32
  a/bf16/step-NNNN.safetensors  the same weights rounded to bfloat16
  b/base.safetensors            the last checkpoint of that run
  b/tune-N.safetensors          fine-tunes of the base on other data, with the
                                embedding and the lower half of the blocks frozen
  c/reordered-NNNN.safetensors  checkpoints of (a) re-saved in reverse tensor order
  c/meta-NNNN.safetensors       the same re-saved with one extra metadata key

float32 files and the metadata variant are written by the `safetensors` package;
bfloat16 and reordered files by `write_ordered` below (numpy has no bfloat16 and the
package always sorts tensors), and every such file is read back with the package.
Usage: gen_checkpoints.py OUT [STEPS] [EVERY]
"""

import json
import os
import struct
import sys

import numpy as np
from safetensors import safe_open
from safetensors.numpy import load_file, save_file

VOCAB, DIM, HIDDEN, BLOCKS, BATCH, LR = 4096, 512, 1024, 8, 64, 1e-3


def init(rng):
    p = {"embed.weight": rng.normal(0, 0.02, (VOCAB, DIM))}
    for i in range(BLOCKS):
        p[f"blocks.{i}.fc1.weight"] = rng.normal(0, DIM**-0.5, (DIM, HIDDEN))
        p[f"blocks.{i}.fc1.bias"] = np.zeros(HIDDEN)
        p[f"blocks.{i}.fc2.weight"] = rng.normal(0, HIDDEN**-0.5 / BLOCKS, (HIDDEN, DIM))
        p[f"blocks.{i}.fc2.bias"] = np.zeros(DIM)
        p[f"blocks.{i}.norm.gain"] = np.ones(DIM)
    return {k: v.astype(np.float32) for k, v in p.items()}


def markov(rng, temperature):
    """A next-token table: each token prefers a handful of successors."""
    logits = rng.normal(0, temperature, (VOCAB, 16))
    succ = rng.integers(0, VOCAB, (VOCAB, 16))
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return succ, probs.cumsum(1)


def batch(rng, table):
    succ, cum = table
    x = rng.integers(0, VOCAB, BATCH)
    pick = (rng.random((BATCH, 1)) < cum[x]).argmax(1)
    return x, succ[x, pick]


def step(p, x, y):
    """Loss and gradients of one batch (hand-written backward pass)."""
    g = {k: np.zeros_like(v) for k, v in p.items()}
    h, cache = p["embed.weight"][x], []
    for i in range(BLOCKS):
        b = f"blocks.{i}."
        n = h * p[b + "norm.gain"]
        a = n @ p[b + "fc1.weight"] + p[b + "fc1.bias"]
        r = np.maximum(a, 0)
        cache.append((h, n, a, r))
        h = h + r @ p[b + "fc2.weight"] + p[b + "fc2.bias"]
    logits = h @ p["embed.weight"].T
    logits -= logits.max(1, keepdims=True)
    prob = np.exp(logits)
    prob /= prob.sum(1, keepdims=True)
    loss = -np.log(prob[np.arange(BATCH), y] + 1e-9).mean()
    d = prob
    d[np.arange(BATCH), y] -= 1
    d /= BATCH
    g["embed.weight"] += d.T @ h
    dh = d @ p["embed.weight"]
    for i in reversed(range(BLOCKS)):
        b = f"blocks.{i}."
        hin, n, a, r = cache[i]
        g[b + "fc2.weight"] += r.T @ dh
        g[b + "fc2.bias"] += dh.sum(0)
        da = (dh @ p[b + "fc2.weight"].T) * (a > 0)
        g[b + "fc1.weight"] += n.T @ da
        g[b + "fc1.bias"] += da.sum(0)
        dn = da @ p[b + "fc1.weight"].T
        g[b + "norm.gain"] += (dn * hin).sum(0)
        dh = dh + dn * p[b + "norm.gain"]
    np.add.at(g["embed.weight"], x, dh)
    return loss, g


def train(p, rng, table, steps, frozen=(), every=0, save=None):
    p = {k: w.copy() for k, w in p.items()}
    trained = [k for k in p if not any(k.startswith(f) for f in frozen)]
    m = {k: np.zeros_like(p[k]) for k in trained}
    v = {k: np.zeros_like(p[k]) for k in trained}
    for t in range(1, steps + 1):
        loss, g = step(p, *batch(rng, table))
        rate = LR * np.sqrt(1 - 0.999**t) / (1 - 0.9**t)
        for k in trained:
            m[k] *= 0.9
            m[k] += 0.1 * g[k]
            v[k] *= 0.999
            v[k] += 0.001 * g[k] * g[k]
            p[k] -= (rate * m[k] / (np.sqrt(v[k]) + 1e-8)).astype(np.float32)
        if every and t % every == 0:
            print(f"step {t} loss {loss:.3f}", file=sys.stderr)
            save(t, p)
    return p


def bf16_bytes(a):
    """float32 → bfloat16 bits, rounding to nearest even."""
    bits = a.astype(np.float32).view(np.uint32)
    rounded = bits + 0x7FFF + ((bits >> 16) & 1)
    return (rounded >> 16).astype(np.uint16).tobytes()


def write_ordered(path, tensors, order, dtype="F32", metadata=None):
    """A safetensors file with tensors in the given order (the format allows any)."""
    header, blobs, at = {}, [], 0
    for name in order:
        a = tensors[name]
        raw = bf16_bytes(a) if dtype == "BF16" else a.astype(np.float32).tobytes()
        header[name] = {"dtype": dtype, "shape": list(a.shape), "data_offsets": [at, at + len(raw)]}
        blobs.append(raw)
        at += len(raw)
    if metadata:
        header["__metadata__"] = metadata
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text)
        for raw in blobs:
            f.write(raw)


def check_readable(path, expect):
    """Open a hand-written file with the package: it must list the same tensors."""
    with safe_open(path, framework="numpy") as f:
        assert set(f.keys()) == set(expect), path


def main():
    out, steps = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 200
    every = int(sys.argv[3]) if len(sys.argv) > 3 else 40
    for d in ["a/fp32", "a/bf16", "b", "c"]:
        os.makedirs(f"{out}/{d}", exist_ok=True)
    rng = np.random.default_rng(7)
    p = init(rng)
    meta = {"format": "pt"}

    def save(t, params):
        save_file(params, f"{out}/a/fp32/step-{t:04}.safetensors", metadata=meta)
        path = f"{out}/a/bf16/step-{t:04}.safetensors"
        write_ordered(path, params, sorted(params), "BF16", meta)
        check_readable(path, params)

    p = train(p, rng, markov(rng, 2.0), steps, every=every, save=save)
    save_file(p, f"{out}/b/base.safetensors", metadata=meta)
    frozen = ["embed."] + [f"blocks.{i}." for i in range(BLOCKS // 2)]
    for n in range(3):
        tuned = train(p, np.random.default_rng(100 + n), markov(np.random.default_rng(200 + n), 2.0), every, frozen)
        save_file(tuned, f"{out}/b/tune-{n}.safetensors", metadata=meta)
    for t in range(every, steps + 1, every):
        src = load_file(f"{out}/a/fp32/step-{t:04}.safetensors")
        path = f"{out}/c/reordered-{t:04}.safetensors"
        write_ordered(path, src, sorted(src, reverse=True), "F32", meta)
        check_readable(path, src)
        save_file(src, f"{out}/c/meta-{t:04}.safetensors", metadata={**meta, "run": f"resaved step {t}"})


if __name__ == "__main__":
    main()
