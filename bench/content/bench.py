#!/usr/bin/env python3
"""Publish benchmark: `orch publish` vs `casync make` on the same release trees, same run.

For each repetition, both tools publish the versions in order into fresh stores (the order of the two tools
alternates between repetitions). Measured per version: wall time of the whole process (including .NET start-up
for orch), store bytes (sum of chunk object sizes), new bytes, and the chunk-level download between successive
versions (bytes of the chunks version N+1 uses that version N does not). Prints a Markdown report.

With --packs, orch publishes with --packs (each new chunk stored once, inside pack objects) and its store bytes are
chunks/ plus packs/.

usage: bench.py WORK ORCH_BINARY VERSION... [--reps N] [--packs]
"""
import json, os, resource, shutil, statistics, struct, subprocess, sys, time

def chunk_bytes(root, suffix=""):
    total = count = 0
    for dirpath, _, files in os.walk(root):
        for f in files:
            if f.endswith(suffix) and ".tmp" not in f:
                total += os.path.getsize(os.path.join(dirpath, f)); count += 1
    return total, count

def tree_bytes(root):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(root) for f in fs
               if not os.path.islink(os.path.join(d, f)))

def caidx_chunks(path):
    """Chunk ids of a casync .caidx: 48-byte index header, 16-byte table header, 40-byte items, item offset 0 = tail."""
    data = open(path, "rb").read()
    pos, ids = 64, []
    while pos + 40 <= len(data):
        offset = struct.unpack_from("<Q", data, pos)[0]
        if offset == 0:
            break
        ids.append(data[pos + 8:pos + 40].hex())
        pos += 40
    return ids

def casync_chunk_size(store, cid):
    return os.path.getsize(os.path.join(store, cid[:4], cid + ".cacnk"))

def orch_chunks(store, product, version):
    m = json.load(open(os.path.join(store, "manifests", product, version + ".json")))
    return [c["id"] for f in m["files"] for c in f["chunks"]]

PACKS = False

def packed_sizes(store, product):
    """Stored length of every chunk some pack index locates: header 48 bytes, 36 per pack, 16 per entry, 64 signature."""
    sizes = {}
    folder = os.path.join(store, "manifests", product)
    for name in os.listdir(folder):
        if not name.endswith(".packs"):
            continue
        data = open(os.path.join(folder, name), "rb").read()
        order = list(dict.fromkeys(orch_chunks(store, product, name[:-6])))
        packs, entries = struct.unpack_from("<II", data, 40)
        at = 48 + 36 * packs
        for e in range(entries):
            chunk, _, _, stored = struct.unpack_from("<IIII", data, at + 16 * e)
            sizes[order[chunk]] = stored
    return sizes

def orch_chunk_size(store, cid, packed=None):
    path = os.path.join(store, "chunks", cid[:2], cid)
    return os.path.getsize(path) if os.path.exists(path) else packed[cid]

CPU = {}

def timed(cmd):
    """Wall seconds of the child; its CPU seconds (user + sys) are accumulated in CPU[tool]."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    tool = os.path.basename(cmd[0])
    CPU[tool] = CPU.get(tool, 0) + (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, out

def run_once(work, orch, versions, orch_first):
    orch_store, ca_store, ca_idx = (os.path.join(work, n) for n in ("orch-store", "casync-store", "casync-idx"))
    for d in (orch_store, ca_store, ca_idx):
        shutil.rmtree(d, ignore_errors=True)
    os.makedirs(ca_idx)
    rows = []
    for v in versions:
        tree = os.path.join(work, "trees", v)
        def do_orch():
            t, out = timed([orch, "publish", "--store", orch_store, "--keys", os.path.join(work, "keys"),
                            "--product", "grpc-tools", "--version", v, "--json"] + (["--packs"] if PACKS else []) + [tree])
            return t, json.loads(out)
        def do_casync():
            t, _ = timed(["casync", "make", "--compression=zstd", "--chunk-size=16384:65536:262144",
                          "--store=" + ca_store, os.path.join(ca_idx, v + ".caidx"), tree])
            return t
        if orch_first:
            (ot, oj), ct = do_orch(), do_casync()
        else:
            ct = do_casync(); ot, oj = do_orch()
        rows.append({"version": v, "orch_s": ot, "orch_inproc_s": oj["elapsedSeconds"], "casync_s": ct,
                     "orch_store": chunk_bytes(os.path.join(orch_store, "chunks"))[0] + chunk_bytes(os.path.join(orch_store, "packs"))[0],
                     "casync_store": chunk_bytes(ca_store, ".cacnk")[0],
                     "orch_new": oj["bytesNew"], "orch_chunks": oj["chunksTotal"], "orch_chunks_new": oj["chunksNew"]})
    # Download bytes between successive versions (distinct chunks of N+1 not in N).
    packed = packed_sizes(orch_store, "grpc-tools") if PACKS else None
    for prev, cur in zip(rows, rows[1:]):
        o_prev = set(orch_chunks(orch_store, "grpc-tools", prev["version"]))
        o_cur = set(orch_chunks(orch_store, "grpc-tools", cur["version"]))
        cur["orch_download"] = sum(orch_chunk_size(orch_store, c, packed) for c in o_cur - o_prev)
        c_prev = set(caidx_chunks(os.path.join(ca_idx, prev["version"] + ".caidx")))
        c_cur = set(caidx_chunks(os.path.join(ca_idx, cur["version"] + ".caidx")))
        cur["casync_download"] = sum(casync_chunk_size(ca_store, c) for c in c_cur - c_prev)
        cur["orch_download_chunks"] = len(o_cur - o_prev)
        cur["casync_download_chunks"] = len(c_cur - c_prev)
    return rows

def mib(b):
    return f"{b / 1048576:.1f}"

def main():
    args = sys.argv[1:]
    reps = 3
    global PACKS
    if "--packs" in args:
        PACKS = True; args.remove("--packs")
    if "--reps" in args:
        i = args.index("--reps"); reps = int(args[i + 1]); del args[i:i + 2]
    work, orch, versions = args[0], args[1], args[2:]
    keys = os.path.join(work, "keys")
    if not os.path.exists(keys):
        subprocess.run([orch, "keys", "init", "--dir", keys], check=True, capture_output=True)
    load_start = os.getloadavg()[0]
    runs = [run_once(work, orch, versions, orch_first=(r % 2 == 0)) for r in range(reps)]
    sizes = {v: tree_bytes(os.path.join(work, "trees", v)) for v in versions}
    med = lambda key, i: statistics.median(r[i][key] for r in runs)
    print(f"Machine: {os.cpu_count()} cores, load average (1 min) {load_start:.1f} at start, {os.getloadavg()[0]:.1f} at end; "
          f"{reps} repetitions, medians shown; casync {subprocess.run(['casync', '--version'], capture_output=True, text=True).stdout.split()[-1]}\n")
    print("| version | tree MiB | orch s | casync s | orch MiB/s | casync MiB/s | speed ratio | orch store MiB | casync store MiB | store ratio |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    tot_o = tot_c = tot_b = 0
    for i, v in enumerate(versions):
        o, c = med("orch_s", i), med("casync_s", i)
        tot_o += o; tot_c += c; tot_b += sizes[v]
        os_, cs = runs[0][i]["orch_store"], runs[0][i]["casync_store"]
        print(f"| {v} | {mib(sizes[v])} | {o:.2f} | {c:.2f} | {sizes[v] / 1048576 / o:.1f} | {sizes[v] / 1048576 / c:.1f} | "
              f"{c / o:.2f}x | {mib(os_)} | {mib(cs)} | {os_ / cs:.3f} |")
    print(f"| **all** | {mib(tot_b)} | {tot_o:.2f} | {tot_c:.2f} | {tot_b / 1048576 / tot_o:.1f} | {tot_b / 1048576 / tot_c:.1f} | "
          f"**{tot_c / tot_o:.2f}x** | {mib(runs[0][-1]['orch_store'])} | {mib(runs[0][-1]['casync_store'])} | "
          f"**{runs[0][-1]['orch_store'] / runs[0][-1]['casync_store']:.3f}** |")
    orch_cpu = CPU.get(os.path.basename(orch), 0) / reps
    ca_cpu = CPU.get("casync", 0) / reps
    print(f"\nCPU seconds (user + sys) for all {len(versions)} versions, mean per repetition: orch {orch_cpu:.2f}, "
          f"casync {ca_cpu:.2f} (orch/casync {orch_cpu / ca_cpu:.2f}). Throughput by CPU: orch "
          f"{tot_b / 1048576 / orch_cpu:.1f} MiB per CPU-second, casync {tot_b / 1048576 / ca_cpu:.1f}.")
    print("\nDownload between successive versions (distinct chunks of the new version that the old one lacks):\n")
    print("| upgrade | orch chunks | orch MiB | casync chunks | casync MiB | ratio |")
    print("|---|---|---|---|---|---|")
    for prev, cur in zip(runs[0], runs[0][1:]):
        print(f"| {prev['version']} -> {cur['version']} | {cur['orch_download_chunks']} | {mib(cur['orch_download'])} | "
              f"{cur['casync_download_chunks']} | {mib(cur['casync_download'])} | {cur['orch_download'] / cur['casync_download']:.3f} |")
    print("\nRaw per-run wall seconds (orch in-process elapsed in brackets):\n")
    for r, rows in enumerate(runs):
        print(f"- run {r + 1} ({'orch' if r % 2 == 0 else 'casync'} first): " + ", ".join(
            f"{x['version']}: orch {x['orch_s']:.2f} [{x['orch_inproc_s']:.2f}] / casync {x['casync_s']:.2f}" for x in rows))

main()
