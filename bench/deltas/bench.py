#!/usr/bin/env python3
"""Delta download benchmark: what a device holding release N fetches to get release N+1.

Same run, same trees, same file pairing (target path's source = same path, else the unique source file of the same
name, else none = added file) for every tool:
- orch: publish every version, `orch delta build` each step; a device downloads the delta manifest + signature, the
  target manifest + signature, the patch objects of patched files, and the chunks (not already held) of every other
  file whose content it does not hold - exactly what the agent fetches.
- xdelta3 -e -9 -s old new per changed file (added files: xdelta3 -e -9 new); payload only, no index.
- zstd --patch-from=old -19 --long=W per changed file, W covering old + new (added files: zstd -19 --long=W); payload only.
- casync make (zstd, 16/64/256 KiB chunks like orch): chunks of the new index the old one lacks, plus the .caidx.
Files whose content the device already holds (same bytes anywhere in the old tree) cost nothing for any tool.

usage: bench.py WORK ORCH LEVEL VERSION...
"""
import hashlib, json, math, os, shutil, struct, subprocess, sys, time

def files_of(root):
    out = {}
    for d, _, fs in os.walk(root):
        for f in fs:
            p = os.path.join(d, f)
            if not os.path.islink(p):
                out[os.path.relpath(p, root)] = p
    return out

def sha(p):
    return hashlib.sha256(open(p, "rb").read()).hexdigest()

def caidx_chunks(path):
    data = open(path, "rb").read()
    pos, ids = 64, []
    while pos + 40 <= len(data):
        if struct.unpack_from("<Q", data, pos)[0] == 0:
            break
        ids.append(data[pos + 8:pos + 40].hex()); pos += 40
    return ids

def run(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, **kw)

def pairs(old_root, new_root):
    """(relpath, old path or None, new path) for every new file whose content the old tree does not hold."""
    old, new = files_of(old_root), files_of(new_root)
    old_hashes = {sha(p) for p in old.values()}
    by_name = {}
    for rel in old:
        by_name.setdefault(os.path.basename(rel), []).append(rel)
    out = []
    for rel, p in sorted(new.items()):
        if sha(p) in old_hashes:
            continue
        src = old.get(rel)
        if src is None and len(by_name.get(os.path.basename(rel), [])) == 1:
            src = old[by_name[os.path.basename(rel)][0]]
        out.append((rel, src, p))
    return out

def window(a, b):
    return max(27, math.ceil(math.log2(max(2, a + b))))

def xdelta(pairs_, tmp):
    total = 0
    for _, old, new in pairs_:
        out = os.path.join(tmp, "x.vcdiff")
        run(["xdelta3", "-e", "-9", "-f"] + (["-s", old] if old else []) + [new, out])
        total += os.path.getsize(out)
    return total

def zstd_patch(pairs_, tmp):
    total = 0
    for _, old, new in pairs_:
        out = os.path.join(tmp, "z.zst")
        w = window(os.path.getsize(old) if old else 0, os.path.getsize(new))
        run(["zstd", "-q", "-f", "-19", f"--long={w}"] + ([f"--patch-from={old}"] if old else []) + [new, "-o", out])
        total += os.path.getsize(out)
    return total

def orch_download(store, product, old_v, new_v):
    mpath = lambda v: os.path.join(store, "manifests", product, v + ".json")
    old_m, new_m = json.load(open(mpath(old_v))), json.load(open(mpath(new_v)))
    dpath = os.path.join(store, "deltas", product, old_v, new_v + ".json")
    delta = json.load(open(dpath))
    patched = {f["path"]: f for f in delta["files"] if f["method"] == "patch"}
    held_hashes = {f["sha256"] for f in old_m["files"]}
    held_chunks = {c["id"] for f in old_m["files"] for c in f["chunks"]}
    fetch_chunks, patch_bytes, n_patch, n_chunk_files = set(), 0, 0, 0
    for f in new_m["files"]:
        if f["sha256"] in held_hashes:
            continue
        if f["path"] in patched:
            patch_bytes += sum(p["stored"] for p in patched[f["path"]]["parts"]); n_patch += 1
        else:
            n_chunk_files += 1
            fetch_chunks.update(c["id"] for c in f["chunks"] if c["id"] not in held_chunks)
    chunk_bytes = sum(os.path.getsize(os.path.join(store, "chunks", c[:2], c)) for c in fetch_chunks)
    meta = sum(os.path.getsize(p) for p in (dpath, dpath + ".sig", mpath(new_v), mpath(new_v) + ".sig"))
    # Without deltas: every chunk of a file the device lacks, minus those it holds, plus the target manifest.
    plain = set()
    for f in new_m["files"]:
        if f["sha256"] not in held_hashes:
            plain.update(c["id"] for c in f["chunks"] if c["id"] not in held_chunks)
    plain_bytes = sum(os.path.getsize(os.path.join(store, "chunks", c[:2], c)) for c in plain)
    return {"patch": patch_bytes, "chunks": chunk_bytes, "meta": meta, "total": patch_bytes + chunk_bytes + meta,
            "n_patch": n_patch, "n_chunk_files": n_chunk_files,
            "chunks_only": plain_bytes + os.path.getsize(mpath(new_v)) + 64}

def mib(b):
    return f"{b / 1048576:.2f}"

def main():
    work, orch, level, versions = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
    keys, store = os.path.join(work, "keys"), os.path.join(work, "orch-store")
    ca_store, ca_idx, tmp = (os.path.join(work, n) for n in ("casync-store", "casync-idx", "tmp"))
    for d in (store, ca_store, ca_idx, tmp):
        shutil.rmtree(d, ignore_errors=True)
    os.makedirs(ca_idx); os.makedirs(tmp)
    if not os.path.exists(keys):
        run([orch, "keys", "init", "--dir", keys])
    load_start = open("/proc/loadavg").read().split()[0]
    for v in versions:
        tree = os.path.join(work, "trees", v)
        run([orch, "publish", "--store", store, "--keys", keys, "--product", "grpc-tools", "--version", v, "--json", tree])
        run(["casync", "make", "--compression=zstd", "--chunk-size=16384:65536:262144", "--store=" + ca_store,
             os.path.join(ca_idx, v + ".caidx"), tree])
    rows = []
    for old_v, new_v in zip(versions, versions[1:]):
        old_t, new_t = (os.path.join(work, "trees", v) for v in (old_v, new_v))
        t0 = time.perf_counter()
        built = json.loads(run([orch, "delta", "build", "--store", store, "--keys", keys, "--product", "grpc-tools",
                                "--from", old_v, "--to", new_v, "--level", level, "--json"], text=True).stdout)
        orch_s = time.perf_counter() - t0
        o = orch_download(store, "grpc-tools", old_v, new_v)
        ps = pairs(old_t, new_t)
        t0 = time.perf_counter(); x = xdelta(ps, tmp); x_s = time.perf_counter() - t0
        t0 = time.perf_counter(); z = zstd_patch(ps, tmp); z_s = time.perf_counter() - t0
        c_old = set(caidx_chunks(os.path.join(ca_idx, old_v + ".caidx")))
        c_new = set(caidx_chunks(os.path.join(ca_idx, new_v + ".caidx")))
        ca = sum(os.path.getsize(os.path.join(ca_store, c[:4], c + ".cacnk")) for c in c_new - c_old)
        ca += os.path.getsize(os.path.join(ca_idx, new_v + ".caidx"))
        rows.append(dict(step=f"{old_v} -> {new_v}", changed=len(ps), orch=o, xdelta=x, zstd=z, casync=ca,
                         orch_s=orch_s, x_s=x_s, z_s=z_s, built=built))
    load_end = open("/proc/loadavg").read().split()[0]
    tree_mib = {v: sum(os.path.getsize(p) for p in files_of(os.path.join(work, "trees", v)).values()) for v in versions}
    print(f"Machine: {os.cpu_count()} cores, load average {load_start} at start, {load_end} at end; orch delta level {level}; "
          f"{subprocess.run(['xdelta3', '-V'], capture_output=True, text=True).stderr.splitlines()[0]}; "
          f"{subprocess.run(['zstd', '-V'], capture_output=True, text=True).stdout.strip()}; "
          f"casync {subprocess.run(['casync', '--version'], capture_output=True, text=True).stdout.split()[-1]}\n")
    print("Trees: " + ", ".join(f"{v} {mib(b)} MiB" for v, b in tree_mib.items()) + "\n")
    print("| upgrade | changed files | orch total MiB | of which patches / chunks / manifests | xdelta3 -9 MiB | zstd --patch-from -19 MiB | casync MiB | orch chunks only MiB | orch / xdelta3 |")
    print("|---|---|---|---|---|---|---|---|---|")
    tot = dict(orch=0, xdelta=0, zstd=0, casync=0, plain=0)
    for r in rows:
        o = r["orch"]
        tot["orch"] += o["total"]; tot["xdelta"] += r["xdelta"]; tot["zstd"] += r["zstd"]; tot["casync"] += r["casync"]; tot["plain"] += o["chunks_only"]
        print(f"| {r['step']} | {r['changed']} ({o['n_patch']} patched, {o['n_chunk_files']} by chunks) | **{mib(o['total'])}** | "
              f"{mib(o['patch'])} / {mib(o['chunks'])} / {mib(o['meta'])} | {mib(r['xdelta'])} | {mib(r['zstd'])} | {mib(r['casync'])} | "
              f"{mib(o['chunks_only'])} | {o['total'] / r['xdelta']:.3f} |")
    print(f"| **all** | | **{mib(tot['orch'])}** | | {mib(tot['xdelta'])} | {mib(tot['zstd'])} | {mib(tot['casync'])} | {mib(tot['plain'])} | "
          f"**{tot['orch'] / tot['xdelta']:.3f}** |")
    print("\nBuild time per step (seconds, wall): " + "; ".join(
        f"{r['step']}: orch delta build {r['orch_s']:.1f} (in-process {r['built']['elapsedSeconds']:.1f}), xdelta3 {r['x_s']:.1f}, zstd {r['z_s']:.1f}"
        for r in rows))

if __name__ == "__main__":
    main()
