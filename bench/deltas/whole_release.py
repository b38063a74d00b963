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
- casync make (64 KiB and 16 KiB average chunks, zstd): chunks of the new index the old one lacks, plus the .caidx.
- bsdiff per file (same pairing; an added file against an empty one); payload only.
orch's build and `ostree static-delta generate` run under /usr/bin/time -v: wall time, CPU time (user + system) and
peak resident memory of the process that builds the delta (orch: the same DeltaBuilder a node runs; with --method auto
its JSON says what the choice priced and how long each coding took). LEVEL "default" passes no --level (the builder's own choice).
Files whose content the device already holds (same bytes anywhere in the old tree) cost nothing for any tool.

Each step's row is printed as soon as it is measured. ORCH_BENCH_ULTRA=0 leaves out zstd --ultra -22 (slowest tool);
ORCH_BENCH_PEERS=ostree measures only orch and OSTree (the target's pair) when the machine's time is short.
ORCH_BENCH_METHOD=release builds only the whole-release stream (auto also builds per-file patches to compare).
After each row, orch's bytes are broken down: signed manifests (target, delta, signatures) against frames/patches.

usage: whole_release.py WORK ORCH LEVEL PRODUCT VERSION...
"""
import json, math, os, re, shutil, subprocess, sys, time
sys.path.insert(0, os.path.dirname(__file__))
from bench import files_of, sha, caidx_chunks, run, pairs, xdelta, zstd_patch, mib

def bsdiff(pairs_, tmp):
    empty = os.path.join(tmp, "empty")
    open(empty, "wb").close()
    total = 0
    for _, old, new in pairs_:
        out = os.path.join(tmp, "b.bsdiff")
        run(["bsdiff", old or empty, new, out])
        total += os.path.getsize(out)
    return total

def timed(cmd):
    """Runs cmd under /usr/bin/time -v: (stdout, wall seconds, peak RSS bytes, CPU seconds: user + system)."""
    t0 = time.perf_counter()
    p = subprocess.run(["/usr/bin/time", "-v"] + cmd, check=True, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", p.stderr).group(1)) * 1024
    cpu = sum(float(re.search(rf"{k} time \(seconds\): ([0-9.]+)", p.stderr).group(1)) for k in ("User", "System"))
    return p.stdout, wall, rss, cpu

def casync_cost(ca_store, ca_idx, old_v, new_v):
    c_old = set(caidx_chunks(os.path.join(ca_idx, old_v + ".caidx")))
    c_new = set(caidx_chunks(os.path.join(ca_idx, new_v + ".caidx")))
    b = sum(os.path.getsize(os.path.join(ca_store, c[:4], c + ".cacnk")) for c in c_new - c_old)
    return b + os.path.getsize(os.path.join(ca_idx, new_v + ".caidx")), len(c_new - c_old)

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
    peers = os.environ.get("ORCH_BENCH_PEERS", "all") != "ostree"
    method = os.environ.get("ORCH_BENCH_METHOD", "auto")
    keys, store, repo = (os.path.join(work, n) for n in ("keys", "orch-store", "ostree-repo"))
    ca_store, ca_idx, tmp = (os.path.join(work, n) for n in ("casync-store", "casync-idx", "tmp"))
    ca16_store, ca16_idx = (os.path.join(work, n) for n in ("casync16-store", "casync16-idx"))
    for d in (store, repo, ca_store, ca_idx, ca16_store, ca16_idx, tmp):
        shutil.rmtree(d, ignore_errors=True)
    os.makedirs(ca_idx); os.makedirs(ca16_idx); os.makedirs(tmp)
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
        if peers: run(["casync", "make", "--compression=zstd", "--chunk-size=16384:65536:262144", "--store=" + ca_store,
             os.path.join(ca_idx, v + ".caidx"), tree])
        if peers: run(["casync", "make", "--compression=zstd", "--chunk-size=4096:16384:65536", "--store=" + ca16_store,
             os.path.join(ca16_idx, v + ".caidx"), tree])
    ref_bytes = os.path.getsize(os.path.join(repo, "refs", "heads", product)) + os.path.getsize(os.path.join(repo, "config"))
    ultra = os.environ.get("ORCH_BENCH_ULTRA", "1") != "0"
    print(f"Machine: {os.cpu_count()} cores, load average {load_start} after publishing; orch delta level {level}; "
          f"{run(['ostree', '--version'], text=True).stdout.splitlines()[1].strip()} ostree; "
          f"{run(['zstd', '-V'], text=True).stdout.strip()}; "
          f"{subprocess.run(['xdelta3', '-V'], capture_output=True, text=True).stderr.splitlines()[0] if shutil.which('xdelta3') else 'no xdelta3'}; "
          f"{open('/proc/meminfo').readline().strip()}\n")
    tree_mib = {v: dir_bytes(os.path.join(work, "trees", v)) for v in versions}
    print(f"Trees ({product}): " + ", ".join(f"{v} {mib(b)} MiB" for v, b in tree_mib.items()) + "\n")
    print("| upgrade | changed files | orch delta path (method, requests) | OSTree static delta | orch / OSTree | zstd whole-tree -19 | zstd whole-tree --ultra -22 | zstd per file -19 | bsdiff per file | xdelta3 -9 per file | casync 64K (chunks) | casync 16K (chunks) | orch chunk path (requests) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|", flush=True)
    tot = dict(delta=0, ostree=0, z19=0, z22=0, zf=0, b=0, x=0, ca=0, ca16=0, chunks=0)
    times = []
    breakdown = []
    for old_v, new_v in zip(versions, versions[1:]):
        old_t, new_t = (os.path.join(work, "trees", v) for v in (old_v, new_v))
        load_orch = open("/proc/loadavg").read().split()[0]
        out, orch_s, orch_rss, orch_cpu = timed([orch, "delta", "build", "--store", store, "--keys", keys, "--product", product, "--from", old_v,
                                       "--to", new_v, "--method", method, "--json"] + ([] if level == "default" else ["--level", level]))
        built = json.loads(out)
        plan = lambda m: json.loads(run([orch, "release", "plan", "--store", store, "--product", product, "--from", old_v,
                                         "--to", new_v, "--method", m, "--json"], text=True).stdout)
        o_delta, o_chunks = plan("delta"), plan("chunks")
        before = dir_bytes(os.path.join(repo, "deltas")) if os.path.exists(os.path.join(repo, "deltas")) else 0
        load_ostree = open("/proc/loadavg").read().split()[0]
        _, ostree_s, ostree_rss, ostree_cpu = timed(["ostree", "--repo=" + repo, "static-delta", "generate", "--from=" + revs[old_v], "--to=" + revs[new_v]])
        ostree = dir_bytes(os.path.join(repo, "deltas")) - before + ref_bytes
        ps = pairs(old_t, new_t)
        z19, z19_s = zstd_whole(old_t, new_t, tmp, ["-19"]) if peers else (0, 0)
        z22, z22_s = zstd_whole(old_t, new_t, tmp, ["--ultra", "-22"]) if ultra and peers else (0, 0)
        zf = zstd_patch(ps, tmp) if peers else 0
        b = bsdiff(ps, tmp) if peers else 0
        x = xdelta(ps, tmp) if peers else 0
        ca, ca_n = casync_cost(ca_store, ca_idx, old_v, new_v) if peers else (0, 0)
        ca16, ca16_n = casync_cost(ca16_store, ca16_idx, old_v, new_v) if peers else (0, 0)
        for k, v in (("delta", o_delta["bytes"]), ("ostree", ostree), ("z19", z19), ("z22", z22), ("zf", zf), ("b", b), ("x", x), ("ca", ca),
                     ("ca16", ca16), ("chunks", o_chunks["bytes"])):
            tot[k] += v
        kind = "whole-release" if built["method"] == "release" else "per-file"
        nr = lambda v, ran=True: f"{v:,}" if ran and peers else "not run"
        print(f"| {old_v} -> {new_v} | {len(ps)} | **{o_delta['bytes']:,}** ({kind}, {o_delta['requests']}) | {ostree:,} | "
              f"**{o_delta['bytes'] / ostree:.3f}** | {nr(z19)} | {nr(z22, ultra)} | {nr(zf)} | {nr(b)} | {nr(x)} | {nr(ca)} ({ca_n}) | {nr(ca16)} ({ca16_n}) | "
              f"{o_chunks['bytes']:,} ({o_chunks['requests']}) |", flush=True)
        signed = sum(os.path.getsize(os.path.join(store, p)) for p in (
            f"manifests/{product}/{new_v}.json", f"manifests/{product}/{new_v}.json.sig",
            f"deltas/{product}/{old_v}/{new_v}.json", f"deltas/{product}/{old_v}/{new_v}.json.sig"))
        schema = json.load(open(os.path.join(store, f"deltas/{product}/{old_v}/{new_v}.json")))["schema"]
        breakdown.append(f"{old_v} -> {new_v}: signed manifests {signed:,} B (delta schema {schema}), frames/patches/chunks "
                         f"{o_delta['bytes'] - signed:,} B")
        auto = built.get("auto")
        times.append(f"{old_v} -> {new_v}: orch delta build {orch_s:.1f} wall / {orch_cpu:.1f} CPU (load {load_orch} at start; level {built.get('level', level)}, "
                     f"peak RSS {orch_rss / 2**20:.0f} MiB" + (f"; auto: {json.dumps(auto)}" if auto else "") + "), "
                     f"ostree static-delta generate {ostree_s:.1f} wall / {ostree_cpu:.1f} CPU (load {load_ostree} at start; peak RSS {ostree_rss / 2**20:.0f} MiB), "
                     f"orch / ostree {orch_s / ostree_s:.2f} wall, {orch_cpu / ostree_cpu:.2f} CPU, " +
                     (f"zstd whole-tree -19 {z19_s:.1f}" if peers else "") + (f", --ultra -22 {z22_s:.1f}" if ultra and peers else ""))
    if len(versions) > 2:
        print(f"| **all** | | **{tot['delta']:,}** | {tot['ostree']:,} | **{tot['delta'] / tot['ostree']:.3f}** | {tot['z19']:,} | "
              f"{tot['z22']:,} | {tot['zf']:,} | {tot['b']:,} | {tot['x']:,} | {tot['ca']:,} | {tot['ca16']:,} | {tot['chunks']:,} |")
    print("\norch bytes: " + "; ".join(breakdown))
    print("\nBuild time per step (seconds, wall): " + "; ".join(times))
    print(f"Load average at end: {open('/proc/loadavg').read().split()[0]}")

if __name__ == "__main__":
    main()
