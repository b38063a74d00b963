#!/usr/bin/env python3
"""Whole-release delta benchmark: everything a device holding release N fetches to install N+1.

Same run, same trees, every tool:
- orch: `orch publish` every version, `orch delta build --method auto` per step (whole-release stream or per-file
  patches, whichever is fewer bytes); bytes and requests from `orch release plan --method delta|chunks --json`, which an
  EndToEnd test proves equal to what a real agent fetches (target manifest + signature, delta manifest + signature,
  frames/patches, chunks).
- OSTree: `ostree commit` every version into an archive repo, `ostree static-delta generate --from --to` per step
  (defaults); counted: the delta's superblock and parts, the ref and the repo config (what `ostree pull` fetches).
- zstd --patch-from, whole tree: every old file concatenated in path order as the reference, the new files whose content
  the old tree lacks concatenated in path order, `zstd -19 --long=W` and `--ultra -22 --long=W` (W covers both);
  payload only.
- zstd --patch-from -19 and xdelta3 -9 per file (bench.py's pairing: same path, else unique same name, else none).
- casync make (64 KiB average chunks, zstd): chunks of the new index the old one lacks, plus the .caidx.
Files whose content the device already holds (same bytes anywhere in the old tree) cost nothing for any tool.

usage: whole_release.py WORK ORCH LEVEL PRODUCT VERSION...
"""
import json, math, os, re, shutil, subprocess, sys, time
sys.path.insert(0, os.path.dirname(__file__))
from bench import files_of, sha, caidx_chunks, run, pairs, xdelta, zstd_patch, mib

def dir_bytes(root):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(root) for f in fs)

def zstd_whole(old_root, new_root, tmp, level_args):
    old, new = files_of(old_root), files_of(new_root)
    old_hashes = {sha(p) for p in old.values()}
    ref, tgt = os.path.join(tmp, "old.cat"), os.path.join(tmp, "new.cat")
    with open(ref, "wb") as o:
        for rel in sorted(old): o.write(open(old[rel], "rb").read())
    with open(tgt, "wb") as o:
        for rel in sorted(new):
            if sha(new[rel]) not in old_hashes: o.write(open(new[rel], "rb").read())
    w = max(27, math.ceil(math.log2(max(2, os.path.getsize(ref) + os.path.getsize(tgt)))))
    out = os.path.join(tmp, "whole.zst")
    t0 = time.perf_counter()
    run(["zstd", "-q", "-f", "-T1"] + level_args + [f"--long={w}", f"--patch-from={ref}", tgt, "-o", out])
    return os.path.getsize(out), time.perf_counter() - t0

def main():
    work, orch, level, product, versions = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:]
    keys, store, repo = (os.path.join(work, n) for n in ("keys", "orch-store", "ostree-repo"))
    ca_store, ca_idx, tmp = (os.path.join(work, n) for n in ("casync-store", "casync-idx", "tmp"))
    for d in (store, repo, ca_store, ca_idx, tmp):
        shutil.rmtree(d, ignore_errors=True)
    os.makedirs(ca_idx); os.makedirs(tmp)
    if not os.path.exists(keys):
        run([orch, "keys", "init", "--dir", keys])
    run(["ostree", "--repo=" + repo, "init", "--mode=archive"])
    load_start = open("/proc/loadavg").read().split()[0]
    revs = {}
    for v in versions:
        tree = os.path.join(work, "trees", v)
        run([orch, "publish", "--store", store, "--keys", keys, "--product", product, "--version", v, "--json", tree])
        revs[v] = run(["ostree", "--repo=" + repo, "commit", "-b", product, "--no-xattrs", "-s", v, "--tree=dir=" + tree],
                      text=True).stdout.strip()
        run(["casync", "make", "--compression=zstd", "--chunk-size=16384:65536:262144", "--store=" + ca_store,
             os.path.join(ca_idx, v + ".caidx"), tree])
    ref_bytes = os.path.getsize(os.path.join(repo, "refs", "heads", product)) + os.path.getsize(os.path.join(repo, "config"))
    rows = []
    for old_v, new_v in zip(versions, versions[1:]):
        old_t, new_t = (os.path.join(work, "trees", v) for v in (old_v, new_v))
        t0 = time.perf_counter()
        built = json.loads(run([orch, "delta", "build", "--store", store, "--keys", keys, "--product", product, "--from", old_v,
                                "--to", new_v, "--level", level, "--method", "auto", "--json"], text=True).stdout)
        orch_s = time.perf_counter() - t0
        plan = lambda m: json.loads(run([orch, "release", "plan", "--store", store, "--product", product, "--from", old_v,
                                         "--to", new_v, "--method", m, "--json"], text=True).stdout)
        o_delta, o_chunks = plan("delta"), plan("chunks")
        before = dir_bytes(os.path.join(repo, "deltas")) if os.path.exists(os.path.join(repo, "deltas")) else 0
        t0 = time.perf_counter()
        run(["ostree", "--repo=" + repo, "static-delta", "generate", "--from=" + revs[old_v], "--to=" + revs[new_v]])
        ostree_s = time.perf_counter() - t0
        ostree = dir_bytes(os.path.join(repo, "deltas")) - before + ref_bytes
        ps = pairs(old_t, new_t)
        z19, z19_s = zstd_whole(old_t, new_t, tmp, ["-19"])
        z22, z22_s = zstd_whole(old_t, new_t, tmp, ["--ultra", "-22"])
        zf = zstd_patch(ps, tmp)
        x = xdelta(ps, tmp)
        c_old = set(caidx_chunks(os.path.join(ca_idx, old_v + ".caidx")))
        c_new = set(caidx_chunks(os.path.join(ca_idx, new_v + ".caidx")))
        ca = sum(os.path.getsize(os.path.join(ca_store, c[:4], c + ".cacnk")) for c in c_new - c_old)
        ca += os.path.getsize(os.path.join(ca_idx, new_v + ".caidx"))
        rows.append(dict(step=f"{old_v} -> {new_v}", changed=len(ps), built=built, orch_s=orch_s, delta=o_delta, chunks=o_chunks,
                         ostree=ostree, ostree_s=ostree_s, z19=z19, z19_s=z19_s, z22=z22, z22_s=z22_s, zf=zf, x=x, ca=ca,
                         ca_n=len(c_new - c_old)))
    load_end = open("/proc/loadavg").read().split()[0]
    tree_mib = {v: dir_bytes(os.path.join(work, "trees", v)) for v in versions}
    print(f"Machine: {os.cpu_count()} cores, load average {load_start} at start, {load_end} at end; orch delta level {level}; "
          f"{run(['ostree', '--version'], text=True).stdout.splitlines()[1].strip()} ostree; "
          f"{run(['zstd', '-V'], text=True).stdout.strip()}; "
          f"{subprocess.run(['xdelta3', '-V'], capture_output=True, text=True).stderr.splitlines()[0]}\n")
    print(f"Trees ({product}): " + ", ".join(f"{v} {mib(b)} MiB" for v, b in tree_mib.items()) + "\n")
    print("| upgrade | changed files | orch delta path (method, requests) | OSTree static delta | orch / OSTree | zstd whole-tree -19 | zstd whole-tree --ultra -22 | zstd per file -19 | xdelta3 -9 per file | casync 64K (chunks) | orch chunk path (requests) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    tot = dict(delta=0, ostree=0, z19=0, z22=0, zf=0, x=0, ca=0, chunks=0)
    for r in rows:
        for k, v in (("delta", r["delta"]["bytes"]), ("ostree", r["ostree"]), ("z19", r["z19"]), ("z22", r["z22"]), ("zf", r["zf"]),
                     ("x", r["x"]), ("ca", r["ca"]), ("chunks", r["chunks"]["bytes"])):
            tot[k] += v
        kind = "whole-release" if r["built"]["method"] == "release" else "per-file"
        print(f"| {r['step']} | {r['changed']} | **{r['delta']['bytes']:,}** ({kind}, {r['delta']['requests']}) | {r['ostree']:,} | "
              f"**{r['delta']['bytes'] / r['ostree']:.3f}** | {r['z19']:,} | {r['z22']:,} | {r['zf']:,} | {r['x']:,} | {r['ca']:,} ({r['ca_n']}) | "
              f"{r['chunks']['bytes']:,} ({r['chunks']['requests']}) |")
    print(f"| **all** | | **{tot['delta']:,}** | {tot['ostree']:,} | **{tot['delta'] / tot['ostree']:.3f}** | {tot['z19']:,} | {tot['z22']:,} | "
          f"{tot['zf']:,} | {tot['x']:,} | {tot['ca']:,} | {tot['chunks']:,} |")
    print("\nBuild time per step (seconds, wall): " + "; ".join(
        f"{r['step']}: orch delta build {r['orch_s']:.1f}, ostree static-delta generate {r['ostree_s']:.1f}, "
        f"zstd whole-tree -19 {r['z19_s']:.1f}, --ultra -22 {r['z22_s']:.1f}" for r in rows))

if __name__ == "__main__":
    main()
