#!/usr/bin/env python3
"""Chunk path with patched chunks: what a device holding release N fetches to install N+1 without a delta, from a
--packs store (64K average chunks) before and after `orch release chunk-patches`, vs casync 64K, same run.

Counts everything the device fetches. orch: `orch release plan --method chunks --json` (target manifest, signature,
chunk patch index, pack index, every patch and chunk range: what a real agent fetches, asserted equal by
tests/EndToEnd.Tests AgentChunkPatchTests and AgentPackTests). casync: the target .caidx plus every chunk the target uses
that the source does not (one request per chunk plus one for the index). The patch computation (off the publish path)
is timed separately: wall clock and CPU (user + system) of `orch release chunk-patches` per step, and its peak RSS.

usage: chunk_patch_path.py WORK ORCH_BINARY PRODUCT_LABEL VERSION...   (trees in WORK/trees/<version>)
"""
import json, os, resource, shutil, subprocess, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from chunk_path import caidx_chunks, run  # noqa: E402

PRODUCT = "bench"

def casync_rows(work, versions):
    store, idx = os.path.join(work, "casync-store-64K"), os.path.join(work, "casync-idx-64K")
    for d in (store, idx):
        shutil.rmtree(d, ignore_errors=True)
    os.makedirs(idx)
    for v in versions:
        run(["casync", "make", "--compression=zstd", "--chunk-size=16384:65536:262144", "--store=" + store,
             os.path.join(idx, v + ".caidx"), os.path.join(work, "trees", v)])
    rows = []
    for a, b in zip(versions, versions[1:]):
        new = set(caidx_chunks(os.path.join(idx, b + ".caidx"))) - set(caidx_chunks(os.path.join(idx, a + ".caidx")))
        caidx = os.path.getsize(os.path.join(idx, b + ".caidx"))
        chunk_bytes = sum(os.path.getsize(os.path.join(store, c[:4], c + ".cacnk")) for c in new)
        rows.append({"bytes": caidx + chunk_bytes, "requests": len(new) + 1, "objects": len(new)})
    return rows

def timed(cmd):
    """Runs cmd; returns (stdout, wall s, CPU s of the child, peak RSS KiB of the child)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    p = subprocess.run(["/usr/bin/time", "-f", "%M"] + cmd, check=True, capture_output=True, text=True)
    wall = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    rss = int(p.stderr.strip().splitlines()[-1])
    return p.stdout, wall, cpu, rss

def main():
    work, orch, label, versions = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
    keys = os.path.join(work, "keys")
    if not os.path.exists(keys):
        run([orch, "keys", "init", "--dir", keys])
    load_start = open("/proc/loadavg").read().strip()
    store = os.path.join(work, "orch-store-patches")
    shutil.rmtree(store, ignore_errors=True)
    for v in versions:
        run([orch, "publish", "--store", store, "--keys", keys, "--product", PRODUCT, "--version", v, "--packs", "--json",
             os.path.join(work, "trees", v)])

    def plan(a, b):
        return json.loads(run([orch, "release", "plan", "--store", store, "--product", PRODUCT, "--from", a, "--to", b,
                               "--method", "chunks", "--json"]))
    steps = list(zip(versions, versions[1:]))
    before = [plan(a, b) for a, b in steps]
    builds = []
    for a, b in steps:
        out, wall, cpu, rss = timed([orch, "release", "chunk-patches", "--store", store, "--keys", keys, "--product", PRODUCT,
                                     "--version", b, "--base", a, "--json"])
        builds.append((json.loads(out), wall, cpu, rss))
    after = [plan(a, b) for a, b in steps]
    casync = casync_rows(work, versions)
    load_end = open("/proc/loadavg").read().strip()

    print(f"{label} {', '.join(versions)}; /proc/loadavg at start: {load_start}; at end: {load_end}. Everything a device "
          "holding the previous release fetches (orch: manifest, signature, chunk patch index (a 404 without patches, no bytes), "
          "pack index, patch and chunk ranges; casync: .caidx and chunks), 64K average chunks.\n")
    print("| upgrade | tool | bytes | requests | objects | bytes / casync 64K | requests / casync-64K chunks |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for i, (a, b) in enumerate(steps):
        base = casync[i]
        for tool, r in (("orch packs", before[i]), ("orch packs + patched chunks", after[i]), ("casync 64K", casync[i])):
            print(f"| {a} -> {b} | {tool} | {r['bytes']:,} | {r['requests']:,} | {r['objects']:,} | "
                  f"{r['bytes'] / base['bytes']:.3f} | {r['requests'] / base['objects']:.3f} |")
    print("\nPatch computation (`orch release chunk-patches`, level 19, off the publish path):\n")
    print("| step | new chunks of changed files | patched | patch bytes | chunk bytes replaced | wall s | CPU s | peak RSS MiB |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for (a, b), (r, wall, cpu, rss) in zip(steps, builds):
        print(f"| {a} -> {b} | {r['candidates']:,} | {r['patched']:,} | {r['patchBytes']:,} | {r['chunkBytesReplaced']:,} | "
              f"{wall:.1f} | {cpu:.1f} | {rss / 1024:.0f} |")
    print(f"\nStore: packs/ {sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(os.path.join(store, 'packs')) for f in fs):,} bytes "
          "(chunks and patches).")

if __name__ == "__main__":
    main()
