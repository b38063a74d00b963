#!/usr/bin/env python3
"""Compact manifests (docs/store-format.md "Compact manifests"): what a device holding release A fetches to install B,
everything counted by `orch release plan --json` (the figure the end-to-end tests hold equal to a real agent's), before
and after the store holds B's compact manifests, on the delta path and on the chunk path.

Works on a COPY of a benchmark work folder's orch store (deltas/bench.py / whole_release.py layout: WORK/orch-store with
the delta A -> B already built, WORK/keys): plans both methods, then runs `orch delta build` for the same pair at the
delta's own level (already built: nothing is coded again; it adds B's manifest patch against A, as the node does), and
plans again. Also publishes A and B into a fresh store with this orch (`--packs`, default chunking) to show the whole
frame and the patch a publish writes. Byte counts do not depend on load.

usage: compact_manifests.py WORK ORCH PRODUCT A B
"""
import json, os, shutil, subprocess, sys, tempfile

def run(cmd):
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout

def plan(orch, store, product, a, b, method):
    return json.loads(run([orch, "release", "plan", "--store", store, "--product", product, "--from", a, "--to", b,
                           "--method", method, "--json"]))

def size(path):
    return os.path.getsize(path) if os.path.exists(path) else None

def main():
    work, orch, product, a, b = sys.argv[1:6]
    print(f"load average at start: {open('/proc/loadavg').read().strip()}")
    tmp = tempfile.mkdtemp(prefix="compact-manifests-")
    try:
        store = os.path.join(tmp, "orch-store")
        shutil.copytree(os.path.join(work, "orch-store"), store)
        mdir = os.path.join(store, "manifests", product)
        ids = {v["version"]: v["versionId"] for v in json.load(open(os.path.join(mdir, "index.json")))["versions"]}
        before = {m: plan(orch, store, product, a, b, m) for m in ("delta", "chunks")}
        level = json.load(open(os.path.join(store, "deltas", product, a, b + ".json")))["level"]
        built = json.loads(run([orch, "delta", "build", "--store", store, "--keys", os.path.join(work, "keys"), "--product", product,
                                "--from", a, "--to", b, "--level", str(level), "--json"]))
        after = {m: plan(orch, store, product, a, b, m) for m in ("delta", "chunks")}
        json_b = size(os.path.join(mdir, b + ".json"))
        patch = size(os.path.join(mdir, f"{b}.from-{ids[a]}.zst"))
        print(f"\n{product} {a} -> {b} (benchmark store, delta level {level}, delta already built: {built['alreadyBuilt']})")
        print(f"target manifest: JSON {json_b:,} B; patch against {a}'s manifest {patch:,} B ({patch / json_b:.3f}x)")
        print("\n| path | before: bytes | requests | after: bytes | requests | after / before |")
        print("|---|---:|---:|---:|---:|---:|")
        for m in ("delta", "chunks"):
            x, y = before[m], after[m]
            print(f"| {m} ({y['method']}) | {x['bytes']:,} | {x['requests']} | {y['bytes']:,} | {y['requests']} | {y['bytes'] / x['bytes']:.3f} |")

        fresh = os.path.join(tmp, "fresh")
        for v in (a, b):
            run([orch, "publish", "--store", fresh, "--keys", os.path.join(work, "keys"), "--product", product, "--version", v,
                 "--packs", "--json", os.path.join(work, "trees", v)])
        fdir = os.path.join(fresh, "manifests", product)
        fids = {v["version"]: v["versionId"] for v in json.load(open(os.path.join(fdir, "index.json")))["versions"]}
        print(f"\nfresh publish (--packs, default chunking) of {a} and {b}:")
        print("| release | JSON | whole frame .json.zst | patch .from-<prev>.zst |")
        print("|---|---:|---:|---:|")
        for v in (a, b):
            j, w = size(os.path.join(fdir, v + ".json")), size(os.path.join(fdir, v + ".json.zst"))
            p = size(os.path.join(fdir, f"{v}.from-{fids[a]}.zst")) if v == b else None
            print(f"| {v} | {j:,} | {w:,} ({w / j:.3f}x) | {'-' if p is None else f'{p:,} ({p / j:.3f}x)'} |")
        with_compact = plan(orch, fresh, product, a, b, "chunks")
        aside = os.path.join(tmp, "aside")
        os.makedirs(aside)
        for n in os.listdir(fdir):
            if n.endswith(".zst"):
                shutil.move(os.path.join(fdir, n), os.path.join(aside, n))
        without = plan(orch, fresh, product, a, b, "chunks")
        print(f"\nfresh --packs store, chunk path {a} -> {b}: without compact manifests {without['bytes']:,} B in {without['requests']} requests; "
              f"with {with_compact['bytes']:,} B in {with_compact['requests']} requests ({with_compact['bytes'] / without['bytes']:.3f}x)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"load average at end: {open('/proc/loadavg').read().strip()}")

if __name__ == "__main__":
    main()
