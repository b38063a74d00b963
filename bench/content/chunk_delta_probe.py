#!/usr/bin/env python3
"""Probe, not a product path: how small would the chunk path's payload be if each new chunk of release B were sent as
a zstd patch against the region of the same file in release A that it most likely came from?

For every file of B that differs from A, B is cut into 64 KiB pieces (the chunk path's average; content-defined
boundaries would not change the total much because every chunk of a rebuilt native binary is new). Each piece is
compressed (a) alone at zstd -3, the level both orch and casync store chunks at, and (b) with `zstd --patch-from`
against A's bytes around the proportional offset, widened by WINDOW bytes on each side (WINDOW = -1: no base, only the
higher level). Payload only: no manifests, indexes or signatures.

usage: chunk_delta_probe.py TREE_A TREE_B [WINDOW=98304] [LEVEL=19]
"""
import os, subprocess, sys, tempfile

def compressed_size(data, args):
    out = subprocess.run(["zstd", "-q", "-c"] + args, input=data, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, check=True)
    return len(out.stdout)

def main():
    tree_a, tree_b = sys.argv[1], sys.argv[2]
    window = int(sys.argv[3]) if len(sys.argv) > 3 else 98304
    level = sys.argv[4] if len(sys.argv) > 4 else "19"
    level_args = ["-" + level] + (["--ultra"] if int(level) > 19 else [])
    pieces = plain = alone3 = patched = 0
    with tempfile.TemporaryDirectory() as tmp:
        base_path = os.path.join(tmp, "base")
        for root, _, files in os.walk(tree_b):
            for name in sorted(files):
                path_b = os.path.join(root, name)
                path_a = os.path.join(tree_a, os.path.relpath(path_b, tree_b))
                new = open(path_b, "rb").read()
                old = open(path_a, "rb").read() if os.path.exists(path_a) else b""
                if new == old:
                    continue
                for offset in range(0, len(new), 65536):
                    piece = new[offset:offset + 65536]
                    pieces += 1
                    plain += len(piece)
                    alone3 += compressed_size(piece, ["-3"])
                    if old and window >= 0:
                        centre = offset * len(old) // len(new)
                        with open(base_path, "wb") as f:
                            f.write(old[max(0, centre - window):centre + 65536 + window])
                        patched += compressed_size(piece, level_args + ["--patch-from=" + base_path,
                                                                        "--stream-size=%d" % len(piece)])
                    else:
                        patched += compressed_size(piece, level_args)
    print(f"pieces {pieces} plain {plain} zstd-3 alone {alone3} patched {patched} "
          f"patched/alone {patched / alone3:.3f} window {window} level {level}")

if __name__ == "__main__":
    main()
