#!/usr/bin/env python3
"""Chunk-path download benchmark: what a device holding release N fetches to install N+1 without a delta,
orch (a --packs store: each chunk once, in packs, fetched with coalesced Range requests; and a store published
without packs: per-chunk objects) vs casync, at 64K and 16K average chunks, same run.

Counts everything the device fetches. orch: `orch release plan --method chunks --json` (target manifest, signature,
pack index, every pack range or chunk object: what a real agent fetches, asserted by the end-to-end tests). casync:
the target .caidx plus every chunk the target uses that the source does not (casync's own chunk-level dedup; one
request per chunk plus one for the index). Prints a Markdown report.

usage: chunk_path.py WORK ORCH_BINARY VERSION...
"""
import json, os, shutil, subprocess, sys, struct

SIZES = {"64K": (16384, 65536, 262144), "16K": (4096, 16384, 65536)}

def caidx_chunks(path):
    data = open(path, "rb").read()
    pos, ids = 64, []
    while pos + 40 <= len(data):
        if struct.unpack_from("<Q", data, pos)[0] == 0:
            break
        ids.append(data[pos + 8:pos + 40].hex())
        pos += 40
    return ids

def dir_bytes(root):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(root) for f in fs if ".tmp" not in f)

def run(cmd):
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout

def orch_publish(work, orch, versions, size, packs):
    store = os.path.join(work, f"orch-store-{size}" + ("" if packs else "-objects"))
    shutil.rmtree(store, ignore_errors=True)
    mn, avg, mx = SIZES[size]
    for v in versions:
        run([orch, "publish", "--store", store, "--keys", os.path.join(work, "keys"), "--product", "grpc-tools",
             "--version", v, "--chunk-min", str(mn), "--chunk-avg", str(avg), "--chunk-max", str(mx), "--json"]
            + (["--packs"] if packs else []) + [os.path.join(work, "trees", v)])
    return store

def orch_rows(work, orch, versions, size):
    """Two stores of the same releases: --packs (each chunk once, in packs) and one published without packs (chunk objects)."""
    def plan(store, a, b):
        return json.loads(run([orch, "release", "plan", "--store", store, "--product", "grpc-tools", "--from", a, "--to", b,
                               "--method", "chunks", "--json"]))
    packed = orch_publish(work, orch, versions, size, packs=True)
    objects = orch_publish(work, orch, versions, size, packs=False)
    packs = [plan(packed, a, b) for a, b in zip(versions, versions[1:])]
    single = [plan(objects, a, b) for a, b in zip(versions, versions[1:])]
    store_bytes = {"packs store": dir_bytes(os.path.join(packed, "chunks")) + dir_bytes(os.path.join(packed, "packs")),
                   "packs store: chunk objects": dir_bytes(os.path.join(packed, "chunks")),
                   "objects store": dir_bytes(os.path.join(objects, "chunks"))}
    return packs, single, store_bytes

def casync_rows(work, versions, size):
    store, idx = os.path.join(work, f"casync-store-{size}"), os.path.join(work, f"casync-idx-{size}")
    for d in (store, idx):
        shutil.rmtree(d, ignore_errors=True)
    os.makedirs(idx)
    mn, avg, mx = SIZES[size]
    for v in versions:
        run(["casync", "make", "--compression=zstd", f"--chunk-size={mn}:{avg}:{mx}", "--store=" + store,
             os.path.join(idx, v + ".caidx"), os.path.join(work, "trees", v)])
    rows = []
    for a, b in zip(versions, versions[1:]):
        prev = set(caidx_chunks(os.path.join(idx, a + ".caidx")))
        cur = set(caidx_chunks(os.path.join(idx, b + ".caidx")))
        new = cur - prev
        caidx = os.path.getsize(os.path.join(idx, b + ".caidx"))
        chunk_bytes = sum(os.path.getsize(os.path.join(store, c[:4], c + ".cacnk")) for c in new)
        rows.append({"bytes": caidx + chunk_bytes, "requests": len(new) + 1, "objects": len(new)})
    return rows, dir_bytes(store)

def main():
    work, orch, versions = sys.argv[1], sys.argv[2], sys.argv[3:]
    keys = os.path.join(work, "keys")
    if not os.path.exists(keys):
        run([orch, "keys", "init", "--dir", keys])
    load = os.getloadavg()[0]
    results = {}
    for size in SIZES:
        results[("orch packs", size)], results[("orch chunk objects", size)], ostore = orch_rows(work, orch, versions, size)
        results[("casync", size)], cstore = casync_rows(work, versions, size)
        results[("store", size)] = (ostore, cstore)
    print(f"Grpc.Tools {', '.join(versions)}; load average at start {load:.1f}; everything a device fetches for the upgrade "
          "(orch: manifest, signature, pack index, ranges or objects; casync: .caidx and chunks).\n")
    print("| upgrade | tool | chunks | bytes | requests | objects | bytes / casync 64K | requests / casync-64K chunks |")
    print("|---|---|---|---:|---:|---:|---:|---:|")
    for i, (a, b) in enumerate(zip(versions, versions[1:])):
        base = results[("casync", "64K")][i]
        for size in SIZES:
            for tool in ("orch packs", "orch chunk objects", "casync"):
                r = results[(tool, size)][i]
                print(f"| {a} -> {b} | {tool} | {size} | {r['bytes']:,} | {r['requests']:,} | {r['objects']:,} | "
                      f"{r['bytes'] / base['bytes']:.3f} | {r['requests'] / base['objects']:.3f} |")
    print("\n| chunks | orch --packs store (chunks/ + packs/) | of which chunks/ | orch store without packs | casync store | --packs / casync |")
    print("|---|---:|---:|---:|---:|---:|")
    for size in SIZES:
        o, c = results[("store", size)]
        print(f"| {size} | {o['packs store']:,} | {o['packs store: chunk objects']:,} | {o['objects store']:,} | {c:,} | "
              f"{o['packs store'] / c:.3f} |")
    print(f"\nLoad average at end {os.getloadavg()[0]:.1f}.")

if __name__ == "__main__":
    main()
