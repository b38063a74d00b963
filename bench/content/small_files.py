#!/usr/bin/env python3
"""Small-file stream benchmark: a product of many small files (npm package trees), what a device fetches for a fresh
install (from an empty release) and for an upgrade, orch schema 1 (every file chunked on its own) vs orch schema 2
(`--small-files-below T`, several T) vs casync, at 64K and 16K average chunks, same run.

Counts everything the device fetches. orch: `orch release plan --method chunks --json` (manifest, signature, pack
index, coalesced pack ranges: what a real agent fetches, asserted by the end-to-end tests, AgentSmallFileTests
included). casync: the target .caidx plus every chunk the target uses that the source does not (one request per chunk
plus one for the index). Store: orch chunks/ + packs/ + manifests/ (manifests, signatures, pack indexes); casync
store + .caidx files. Prints a Markdown report.

usage: small_files.py WORK ORCH_COMMAND PRODUCT VERSION...   (trees in WORK/trees/PRODUCT/VERSION; ORCH_COMMAND may
be "dotnet path/orch.dll"; SMALL_FILES_THRESHOLDS=0,16384 limits the thresholds tried)
"""
import json, os, shlex, shutil, subprocess, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from chunk_path import SIZES, caidx_chunks, dir_bytes, run  # noqa: E402

THRESHOLDS = {"64K": [0, 4096, 16384, 65536], "16K": [0, 4096, 16384]}
if os.environ.get("SMALL_FILES_THRESHOLDS"):  # e.g. "0,16384" for a quick run on large trees
    THRESHOLDS = {size: [int(t) for t in os.environ["SMALL_FILES_THRESHOLDS"].split(",")] for size in SIZES}

def orch_rows(work, orch, product, versions, size, threshold):
    store = os.path.join(work, f"orch-{product}-{size}-t{threshold}")
    shutil.rmtree(store, ignore_errors=True)
    mn, avg, mx = SIZES[size]
    for v in versions:
        run(orch + ["publish", "--store", store, "--keys", os.path.join(work, "keys"), "--product", product,
                    "--version", v, "--chunk-min", str(mn), "--chunk-avg", str(avg), "--chunk-max", str(mx), "--packs", "--json"]
            + (["--small-files-below", str(threshold)] if threshold else []) + [os.path.join(work, "trees", product, v)])
    rows = [json.loads(run(orch + ["release", "plan", "--store", store, "--product", product, "--from", a, "--to", b,
                                   "--method", "chunks", "--json"])) for a, b in zip(versions, versions[1:])]
    manifest = os.path.getsize(os.path.join(store, "manifests", product, versions[-1] + ".json"))
    return rows, dir_bytes(os.path.join(store, "chunks")) + dir_bytes(os.path.join(store, "packs")) + dir_bytes(os.path.join(store, "manifests")), manifest

def casync_rows(work, product, versions, size):
    store, idx = os.path.join(work, f"casync-{product}-{size}"), os.path.join(work, f"casync-idx-{product}-{size}")
    for d in (store, idx):
        shutil.rmtree(d, ignore_errors=True)
    os.makedirs(idx)
    mn, avg, mx = SIZES[size]
    for v in versions:
        run(["casync", "make", "--compression=zstd", f"--chunk-size={mn}:{avg}:{mx}", "--store=" + store,
             os.path.join(idx, v + ".caidx"), os.path.join(work, "trees", product, v)])
    rows = []
    for a, b in zip(versions, versions[1:]):
        prev = set(caidx_chunks(os.path.join(idx, a + ".caidx")))
        new = set(caidx_chunks(os.path.join(idx, b + ".caidx"))) - prev
        caidx = os.path.getsize(os.path.join(idx, b + ".caidx"))
        chunk_bytes = sum(os.path.getsize(os.path.join(store, c[:4], c + ".cacnk")) for c in new)
        rows.append({"bytes": caidx + chunk_bytes, "requests": len(new) + 1, "objects": len(new)})
    return rows, dir_bytes(store) + dir_bytes(idx)

def main():
    work, orch, product, versions = sys.argv[1], shlex.split(sys.argv[2]), sys.argv[3], sys.argv[4:]
    keys = os.path.join(work, "keys")
    if not os.path.exists(keys):
        run(orch + ["keys", "init", "--dir", keys])
    empty = os.path.join(work, "trees", product, "empty")
    os.makedirs(empty, exist_ok=True)
    versions = ["empty"] + versions
    print(f"{product} {', '.join(versions[1:])}; load average at start {' '.join(f'{x:.2f}' for x in os.getloadavg())}; "
          "everything a device fetches (orch: manifest, signature, pack index, pack ranges; casync: .caidx and chunks).\n")
    print("| install | tool | chunks | small files below | bytes | requests | objects | bytes / casync 64K | requests / casync-64K chunks | manifest bytes | store (all versions) |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    results = []
    for size in SIZES:
        for t in THRESHOLDS[size]:
            rows, store, manifest = orch_rows(work, orch, product, versions, size, t)
            results.append(("orch", size, t, rows, store, manifest))
        rows, store = casync_rows(work, product, versions, size)
        results.append(("casync", size, None, rows, store, None))
    base = next(r for r in results if r[0] == "casync" and r[1] == "64K")[3]
    for i, (a, b) in enumerate(zip(versions, versions[1:])):
        label = f"fresh {b}" if a == "empty" else f"{a} -> {b}"
        for tool, size, t, rows, store, manifest in results:
            r = rows[i]
            print(f"| {label} | {tool} | {size} | {'-' if t is None else ('off' if t == 0 else t)} | {r['bytes']:,} | {r['requests']:,} | "
                  f"{r['objects']:,} | {r['bytes'] / base[i]['bytes']:.3f} | {r['requests'] / max(1, base[i]['objects']):.3f} | "
                  f"{'' if manifest is None else f'{manifest:,}'} | {store:,} |")
    print(f"\nLoad average at end {' '.join(f'{x:.2f}' for x in os.getloadavg())}.")

if __name__ == "__main__":
    main()
