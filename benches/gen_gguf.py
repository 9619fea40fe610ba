"""Write a small GGUF series (llama.cpp's format, v3) with the standard library only.

A 26 MB quantised model: a float32 token embedding (2000 x 512, ~N(0, 0.02)), eight
blocks of four Q8_0 attention matrices (512 x 512), two Q8_0 feed-forward matrices
(512 x 1376) and a float32 norm, a vocabulary of 8000 tokens in the metadata. Then:
  base.gguf      the model
  finetune.gguf  blocks 4-7 quantised again from new weights (embedding and blocks
                 0-3 unchanged)
  resaved.gguf   the base with one more metadata key (every tensor moves)
  reordered.gguf the base with its tensors in reverse order
Usage: python3 benches/gen_gguf.py DIR
"""

import array
import os
import random
import struct
import sys

F32, Q8_0, ALIGN = 0, 8, 32


def gguf_string(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def floats(n, rng):
    return array.array("f", (rng.gauss(0.0, 0.02) for _ in range(n))).tobytes()


def q8_0(n, rng):
    """n values as Q8_0 blocks: an f16 scale and 32 int8 quants each."""
    out = bytearray()
    for _ in range(n // 32):
        out += struct.pack("<e", rng.uniform(0.0005, 0.002)) + rng.randbytes(32)
    return bytes(out)


def model(seed, changed_from=None, base=None):
    if base is not None:
        tensors = [base[0]]  # the embedding stays frozen
    else:
        tensors = [("token_embd.weight", F32, [512, 2000], floats(512 * 2000, random.Random(seed)))]
    for b in range(8):
        rng = random.Random(seed * 100 + b)
        if base is not None and (changed_from is None or b < changed_from):
            tensors += [t for t in base if t[0].startswith(f"blk.{b}.")]
            continue
        tensors.append((f"blk.{b}.attn_norm.weight", F32, [512], floats(512, rng)))
        for m in ("attn_q", "attn_k", "attn_v", "attn_output"):
            tensors.append((f"blk.{b}.{m}.weight", Q8_0, [512, 512], q8_0(512 * 512, rng)))
        for m in ("ffn_up", "ffn_down"):
            tensors.append((f"blk.{b}.{m}.weight", Q8_0, [512, 1376], q8_0(512 * 1376, rng)))
    return tensors


def write(path, tensors, metadata):
    head = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(metadata))
    for key, kind, value in metadata:
        head += gguf_string(key) + struct.pack("<I", kind) + value
    at = 0
    for name, ty, dims, data in tensors:
        head += gguf_string(name) + struct.pack("<I", len(dims))
        head += b"".join(struct.pack("<Q", d) for d in dims) + struct.pack("<IQ", ty, at)
        at = -(-(at + len(data)) // ALIGN) * ALIGN
    with open(path, "wb") as f:
        f.write(head + b"\0" * (-len(head) % ALIGN))
        for _, _, _, data in tensors:
            f.write(data + b"\0" * (-len(data) % ALIGN))


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    vocab = [f"tok{i}" for i in range(8000)]
    tokens = struct.pack("<IQ", 8, len(vocab)) + b"".join(gguf_string(t) for t in vocab)
    meta = [
        ("general.architecture", 8, gguf_string("llama")),
        ("llama.block_count", 4, struct.pack("<I", 8)),
        ("tokenizer.ggml.tokens", 9, tokens),
    ]
    base = model(1)
    write(f"{out}/base.gguf", base, meta)
    write(f"{out}/finetune.gguf", model(2, changed_from=4, base=base), meta)
    write(f"{out}/resaved.gguf", base, meta + [("general.name", 8, gguf_string("base, saved again"))])
    write(f"{out}/reordered.gguf", base[::-1], meta)


if __name__ == "__main__":
    main()
