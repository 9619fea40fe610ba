"""Markdown tables from the results file benches/checkpoints.sh writes.

Lines: `SERIES TOOL backup N FILE SECS RSS_KIB`, `SERIES TOOL size N REPO_BYTES FILE_BYTES`,
`SERIES TOOL restore N SECS RSS_KIB`. Usage: checkpoints_table.py RESULTS VERSION...
"""

import sys

MIB = 2**20
TITLES = {
    "a32": "(a) one training run, float32, a checkpoint every K steps",
    "a16": "(a) the same run, bfloat16",
    "b": "(b) base model, then fine-tunes with the embedding and lower blocks frozen",
    "c": "(c) last float32 checkpoint, re-saved in reverse tensor order, re-saved with an extra metadata key",
}


def load(path):
    backups, sizes, restores, order = {}, {}, {}, []
    for line in open(path):
        f = line.split()
        series, tool, what, n = f[0], f[1], f[2], int(f[3])
        if series not in order:
            order.append(series)
        if what == "backup":
            backups[series, tool, n] = (f[4], float(f[5]), int(f[6]) / 1024)
        elif what == "size":
            sizes[series, tool, n] = (int(f[4]), int(f[5]))
        else:
            restores[series, tool] = (float(f[4]), int(f[5]) / 1024)
    return backups, sizes, restores, order


def table(series, tools, backups, sizes, restores):
    n = max(k[2] for k in sizes if k[0] == series)
    print(f"\n{TITLES.get(series, series)}\n")
    head = " | ".join(f"{t} added MiB | {t} backup s" for t in tools)
    print(f"| # | checkpoint | MiB | {head} |")
    print("|---|---|---|" + "---|---|" * len(tools))
    for i in range(1, n + 1):
        name = backups[series, tools[0], i][0]
        cells = []
        for t in tools:
            before = sizes.get((series, t, i - 1), (0, 0))[0]
            cells.append(f"{(sizes[series, t, i][0] - before) / MIB:.1f} | {backups[series, t, i][1]:.2f}")
        print(f"| {i} | {name} | {sizes[series, tools[0], i][1] / MIB:.1f} | {' | '.join(cells)} |")
    print()
    print("| tool | repository MiB | added per checkpoint after the first, MiB | backups s | restore of the last s | peak RSS backup / restore MiB |")
    print("|---|---|---|---|---|---|")
    for t in tools:
        total = sizes[series, t, n][0]
        later = (total - sizes[series, t, 1][0]) / max(n - 1, 1)
        secs = sum(backups[series, t, i][1] for i in range(1, n + 1))
        rss = max(backups[series, t, i][2] for i in range(1, n + 1))
        r = restores[series, t]
        print(f"| {t} | {total / MIB:.1f} | {later / MIB:.1f} | {secs:.2f} | {r[0]:.2f} | {rss:.0f} / {r[1]:.0f} |")


def main():
    backups, sizes, restores, order = load(sys.argv[1])
    print("Versions: " + "; ".join(sys.argv[2:]))
    tools = []
    for k in sizes:
        if k[1] not in tools:
            tools.append(k[1])
    for series in order:
        table(series, tools, backups, sizes, restores)


if __name__ == "__main__":
    main()
