"""Would an XOR delta against the previous checkpoint pay? (docs/decisions/0011)

For each pair of successive checkpoints in a series (same tensor names), compare what
each tensor costs stored three ways, all with zstd at level 3:
  plain    the tensor's bytes as one stream
  grouped  the tensor split into byte planes (byte 0 of every element, byte 1, ...),
           each plane compressed, or kept raw when that is not smaller
  delta    the XOR of the tensor with the same tensor of the previous checkpoint,
           byte-grouped the same way (an identical tensor costs nothing: dedup)
Usage: delta_probe.py DIR_OR_FILES... (files are taken in name order)
Prints one Markdown row per checkpoint and a total.
"""

import json
import struct
import sys
from pathlib import Path

import numpy as np
import zstandard

WIDTH = {"F32": 4, "BF16": 2, "F16": 2, "F64": 8}
ZSTD = zstandard.ZstdCompressor(level=3)


def tensors(path):
    """name → (dtype, raw bytes) of a safetensors file."""
    data = Path(path).read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    body = data[8 + n :]
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        a, b = t["data_offsets"]
        out[name] = (t["dtype"], body[a:b])
    return out


def packed(raw):
    return min(len(ZSTD.compress(raw)), len(raw))


def grouped(raw, width):
    planes = np.frombuffer(raw, dtype=np.uint8).reshape(-1, width).T
    return sum(packed(plane.tobytes()) for plane in planes)


def xor(a, b):
    return (np.frombuffer(a, np.uint8) ^ np.frombuffer(b, np.uint8)).tobytes()


def costs(cur, prev):
    row = {"raw": 0, "plain": 0, "grouped": 0, "delta": 0, "same": 0}
    for name, (dtype, raw) in cur.items():
        width = WIDTH.get(dtype, 1)
        g = grouped(raw, width)
        row["raw"] += len(raw)
        row["plain"] += packed(raw)
        row["grouped"] += g
        old = prev.get(name)
        if old is None or old[0] != dtype or len(old[1]) != len(raw):
            row["delta"] += g
        elif old[1] == raw:
            row["same"] += len(raw)
        else:
            row["delta"] += min(grouped(xor(raw, old[1]), width), g)
    return row


def main():
    files = []
    for arg in sys.argv[1:]:
        p = Path(arg)
        files += sorted(p.glob("*.safetensors")) if p.is_dir() else [p]
    mib = 2**20
    print("| checkpoint | raw MiB | zstd MiB | byte-grouped MiB | XOR delta, byte-grouped MiB | unchanged tensors MiB |")
    print("|---|---|---|---|---|---|")
    total = {"raw": 0, "plain": 0, "grouped": 0, "delta": 0, "same": 0}
    prev = {}
    for f in files:
        cur = tensors(f)
        row = costs(cur, prev)
        for k in total:
            total[k] += row[k]
        print(
            f"| {f.name} | {row['raw']/mib:.1f} | {row['plain']/mib:.1f} | {row['grouped']/mib:.1f} "
            f"| {row['delta']/mib:.1f} | {row['same']/mib:.1f} |"
        )
        prev = cur
    print(
        f"| total | {total['raw']/mib:.1f} | {total['plain']/mib:.1f} | {total['grouped']/mib:.1f} "
        f"| {total['delta']/mib:.1f} | {total['same']/mib:.1f} |"
    )


if __name__ == "__main__":
    main()
