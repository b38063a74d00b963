#!/usr/bin/env python3
"""orch-agent side by side with casync and ostree on one tree (issue 23, "Targets"); run by bench/agent/run.sh.

Tree: release 1 = a copy of the .NET shared runtime folder; release 2 changes a fixed set of its files, adds one and
removes one; repair = two files deleted and three damaged in place. Each step runs under /usr/bin/time -v inside a
shell that prints its own /proc/self/io write_bytes after reaping the step (the kernel adds a reaped child's I/O to its
parent), and every byte a device fetches is counted in one nginx access log: the orch store, the casync chunk store and
the ostree archive repo are static folders of the same nginx server, and the node's device API goes through an nginx
proxy in the same server, so manifests, signatures, indexes, check-ins and objects are all counted the same way.
"""
import argparse
import hashlib
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

ap = argparse.ArgumentParser()
ap.add_argument("--work", required=True)
ap.add_argument("--agent-dir", required=True, help="published Native AOT orch-agent folder (orch-agent, libsodium.so)")
ap.add_argument("--node-dll", required=True)
ap.add_argument("--orch-dll", required=True)
ap.add_argument("--runtime", required=True, help="the Microsoft.NETCore.App/<version> folder used as release 1")
ap.add_argument("--label", default="", help="what build the orch rows come from (commit)")
ap.add_argument("--json", required=True, help="write the measurements here")
ap.add_argument("--orch-only", action="store_true", help="skip casync and ostree (for looking at the agent alone; tables need both)")
ap.add_argument("--idle-repeats", type=int, default=0,
                help="this many more idle starts with release 2 installed at the end, each one's first check-in recorded")
ap.add_argument("--strace", help="also run one idle start under strace -f -ttt (execve, connect, sendto, openat) into this file")
a = ap.parse_args()
for _k in ("agent_dir", "node_dll", "orch_dll", "runtime"):
    setattr(a, _k, os.path.abspath(getattr(a, _k)))

W = os.path.abspath(a.work)
MIB = 1024 * 1024


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        sys.exit(f"bench: {' '.join(cmd)} exited {r.returncode}:\n{r.stdout}\n{r.stderr}")
    return r.stdout


# ---------------------------------------------------------------- trees

def copy_tree(src, dst):
    shutil.copytree(src, dst, symlinks=True)


def regular_files(root):
    out = []
    for d, _, fs in os.walk(root):
        for f in fs:
            p = os.path.join(d, f)
            if os.path.isfile(p) and not os.path.islink(p):
                out.append(os.path.relpath(p, root))
    return sorted(out)


def tree_bytes(root, names=None):
    return sum(os.path.getsize(os.path.join(root, n)) for n in (names or regular_files(root)))


def make_trees():
    r1, r2 = f"{W}/trees/r1", f"{W}/trees/r2"
    copy_tree(a.runtime, r1)
    copy_tree(r1, r2)
    files = regular_files(r1)
    # A fixed set: the first 39 files of 120 kB .. 1.5 MB in name order (17.1 MB of the 10.0 runtime): a rebuild
    # that touches some assemblies and leaves the rest alone.
    changed = [f for f in files if 120_000 <= os.path.getsize(f"{r1}/{f}") <= 1_500_000][:39]
    rnd = random.Random(23)
    for f in changed:
        p = f"{r2}/{f}"
        size = os.path.getsize(p)
        with open(p, "r+b") as fh:
            # three 4 KiB regions rewritten and 1 KiB appended: chunk boundaries move, most chunks stay
            for frac in (0.25, 0.5, 0.75):
                fh.seek(int(size * frac))
                fh.write(rnd.randbytes(4096))
            fh.seek(0, 2)
            fh.write(rnd.randbytes(1024))
    removed = [f for f in files if f not in changed and f.endswith(".dll")][-1]
    os.remove(f"{r2}/{removed}")
    added = "bench-added/new-component.bin"
    os.makedirs(f"{r2}/bench-added")
    with open(f"{r2}/{added}", "wb") as fh:
        fh.write(random.Random(24).randbytes(1_500_000))
    r2files = regular_files(r2)
    big = sorted(r2files, key=lambda f: (-os.path.getsize(f"{r2}/{f}"), f))
    # repair: the 2nd and 7th largest deleted, the 3rd, 5th and 9th largest damaged in place (4 KiB at the middle)
    damage = {"deleted": [big[1], big[6]], "damaged": [big[2], big[4], big[8]]}
    return {
        "r1": r1, "r2": r2,
        "r1_files": len(files), "r1_bytes": tree_bytes(r1),
        "changed": len(changed), "changed_bytes": tree_bytes(r2, changed),
        "added_bytes": os.path.getsize(f"{r2}/{added}"), "removed": removed,
        "repair": damage,
        "repair_bytes": sum(os.path.getsize(f"{r2}/{f}") for f in damage["deleted"] + damage["damaged"]),
    }


def apply_damage(root, damage):
    for f in damage["deleted"]:
        os.remove(f"{root}/{f}")
    rnd = random.Random(99)
    for f in damage["damaged"]:
        p = f"{root}/{f}"
        with open(p, "r+b") as fh:  # in place: what a bad sector or a stray write does
            fh.seek(os.path.getsize(p) // 2)
            fh.write(rnd.randbytes(4096))


def digest(root):
    h = hashlib.sha256()
    for f in regular_files(root):
        h.update(f.encode())
        with open(f"{root}/{f}", "rb") as fh:
            h.update(hashlib.sha256(fh.read()).digest())
    return h.hexdigest()


# ---------------------------------------------------------------- nginx: one server, one log

class Nginx:
    def __init__(self, static_root, node_port):
        self.dir = f"{W}/nginx"
        os.makedirs(f"{self.dir}/temp", exist_ok=True)
        self.port = free_port()
        # the node's device API behind a proxy of the same server (the path is kept: requests are signed over it)
        self.gateway_port = free_port()
        self.log = f"{self.dir}/access.log"
        user = "user root;" if os.geteuid() == 0 else ""
        conf = f"""
daemon off;
worker_processes 1;
pid {self.dir}/nginx.pid;
error_log {self.dir}/error.log warn;
{user}
events {{ worker_connections 256; }}
http {{
  log_format bench '$msec $request_time $request_length $bytes_sent $status $request_method $uri';
  access_log {self.log} bench;
  client_body_temp_path {self.dir}/temp/body;
  proxy_temp_path {self.dir}/temp/proxy;
  fastcgi_temp_path {self.dir}/temp/fastcgi;
  uwsgi_temp_path {self.dir}/temp/uwsgi;
  scgi_temp_path {self.dir}/temp/scgi;
  default_type application/octet-stream;
  server {{
    listen 127.0.0.1:{self.port};
    root {static_root};
    location / {{ }}
  }}
  server {{
    listen 127.0.0.1:{self.gateway_port};
    location / {{
      proxy_pass http://127.0.0.1:{node_port};
      proxy_http_version 1.1;
      proxy_set_header Host $http_host;
      proxy_buffering off;
    }}
  }}
}}
"""
        with open(f"{self.dir}/nginx.conf", "w") as fh:
            fh.write(conf)
        self.proc = subprocess.Popen(["nginx", "-c", f"{self.dir}/nginx.conf", "-p", self.dir, "-e", f"{self.dir}/error.log"])
        wait_port(self.port, self.proc, "nginx")
        self.base = f"http://127.0.0.1:{self.port}/"
        self.gateway = f"http://127.0.0.1:{self.gateway_port}/"

    def mark(self):
        return os.path.getsize(self.log) if os.path.exists(self.log) else 0

    def since(self, mark):
        time.sleep(0.3)  # nginx writes the line when the response is done
        with open(self.log) as fh:
            fh.seek(mark)
            rows = []
            for line in fh:
                p = line.split()
                rows.append({"end": float(p[0]), "took": float(p[1]), "req": int(p[2]), "sent": int(p[3]),
                             "status": int(p[4]), "method": p[5], "uri": p[6]})
            return rows

    def stop(self):
        self.proc.send_signal(signal.SIGQUIT)
        self.proc.wait(10)


def wait_port(port, proc, what, seconds=60):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            sys.exit(f"bench: {what} exited {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    sys.exit(f"bench: {what} did not listen on {port} within {seconds} s")


# ---------------------------------------------------------------- measuring one process (tree)

MEASURE = ('/usr/bin/time -v "$@"; rc=$?; grep "^write_bytes:" /proc/$$/io >&2; exit $rc')


def measure(cmd, env=None):
    t0 = time.time()
    p = subprocess.run(["/bin/sh", "-c", MEASURE, "sh"] + cmd, capture_output=True, text=True, env=env)
    err = p.stderr

    def field(name):
        m = re.findall(rf"^\s*{re.escape(name)}: (.*)$", err, re.M)
        if not m:
            sys.exit(f"bench: no '{name}' for {cmd}:\n{p.stdout}\n{err}")
        return m[-1].strip()

    wall = field("Elapsed (wall clock) time (h:mm:ss or m:ss)").split(":")
    secs = sum(float(x) * 60 ** i for i, x in enumerate(reversed(wall)))
    return {
        "cmd": " ".join(os.path.basename(c) if i == 0 else c for i, c in enumerate(cmd)),
        "exit": p.returncode, "start": t0,
        "rss_kb": int(field("Maximum resident set size (kbytes)")),
        "cpu": float(field("User time (seconds)")) + float(field("System time (seconds)")),
        "wall": secs,
        "writes": int(field("write_bytes")),
        "out": (p.stdout + err)[-3000:],
    }


def combine(parts):
    return {"cmd": " ; ".join(p["cmd"] for p in parts), "exit": max(p["exit"] for p in parts),
            "rss_kb": max(p["rss_kb"] for p in parts), "cpu": sum(p["cpu"] for p in parts),
            "wall": sum(p["wall"] for p in parts), "writes": sum(p["writes"] for p in parts),
            "out": parts[-1]["out"], "start": parts[0]["start"]}


def step(nginx, cmds, env=None):
    mark = nginx.mark()
    parts = [measure(c, env) for c in cmds]
    r = combine(parts)
    rows = nginx.since(mark)
    r["fetched"] = sum(x["sent"] for x in rows)
    r["sent_up"] = sum(x["req"] for x in rows)
    r["requests"] = len(rows)
    r["rows"] = rows
    return r


# ---------------------------------------------------------------- orch

def orch(*args, token=None, server=None):
    env = dict(os.environ)
    if server:
        env["ORCH_SERVER"] = server
    if token:
        env["ORCH_TOKEN"] = token
    return run(["dotnet", a.orch_dll, *args], env=env)


def bench_orch(trees, nginx_factory):
    keys, store, data = f"{W}/orch/keys", f"{W}/orch/store", f"{W}/orch/node-data"
    os.makedirs(f"{W}/orch", exist_ok=True)
    orch("keys", "init", "--dir", keys, "--store", store, "--json")
    for v, tree in (("1", trees["r1"]), ("2", trees["r2"])):
        orch("publish", "--store", store, "--keys", keys, "--product", "bench", "--version", v, "--json", tree)
    orch("release", "floor", "--product", "bench", "--min", "1", "--store", store, "--keys", keys, "--json")

    node_port = free_port()
    node_log = open(f"{W}/orch/node.log", "w")
    node = subprocess.Popen(["dotnet", a.node_dll, f"--Urls=http://127.0.0.1:{node_port}", f"--Node:DataDirectory={data}",
                             f"--Node:StoreRoot={store}", "--Node:Port=0", f"--Trust:DirectorKeyFile={keys}/director.key",
                             "--Logging:LogLevel:Default=Warning"], stdout=node_log, stderr=subprocess.STDOUT, cwd=f"{W}/orch")
    try:
        wait_port(node_port, node, "node", 120)
        server = f"http://127.0.0.1:{node_port}"
        for _ in range(400):
            try:
                if urllib.request.urlopen(f"{server}/health/ready", timeout=2).status == 200:
                    break
            except Exception:
                time.sleep(0.1)
        token = open(f"{data}/admin-token").read().strip()
        nginx = nginx_factory(node_port)
        secret = json.loads(orch("device", "provision", "dev-bench", "--product", "bench", "--json", token=token, server=server))["secret"]

        dev = f"{W}/orch/device"
        virt, hidden, free = f"{dev}/virtual", f"{dev}/hidden", f"{dev}/free"
        for d in (virt, f"{virt}/updater", hidden, free):
            os.makedirs(d, exist_ok=True)
        for f in ("orch-agent", "libsodium.so"):
            shutil.copy2(f"{a.agent_dir}/{f}", f"{virt}/{f}")
            shutil.copy2(f"{a.agent_dir}/{f}", f"{virt}/updater/{f}")
        shutil.copy2(f"{keys}/root.json", f"{virt}/trust-root.pub")
        with open(f"{dev}/machine-secret", "wb") as fh:
            fh.write(random.Random(5).randbytes(32))
        config = {
            "deviceId": "dev-bench", "product": "bench",
            "zones": {"virtual": "../virtual", "hidden": "../hidden", "free": "../free"},
            "machineSecretFile": "../machine-secret",
            "gateway": nginx.gateway, "mirrors": [f"{nginx.base}orch/"],
            "updaterCommand": "orch-agent",
            "download": {"mirrorsFirst": True},
        }
        with open(f"{virt}/agent.json", "w") as fh:
            json.dump(config, fh, indent=2)
        with open(f"{dev}/credential", "w") as fh:
            fh.write(secret)
        agent = f"{virt}/orch-agent"
        cfg = f"{virt}/agent.json"
        run([agent, "provision", "--credential-file", f"{dev}/credential", "--content-key-file", f"{keys}/content.key",
             "--trust-root-file", f"{keys}/root.json", "--config", cfg])
        launch = [agent, "run", "--config", cfg, "--no-client"]
        client = f"{free}/client"

        def agent_step(name):
            r = step(nginx, [launch])
            checkins = [x for x in r["rows"] if x["uri"].endswith("/check-in")]
            r["first_checkin_ms"] = round((checkins[0]["end"] - checkins[0]["took"] - r["start"]) * 1000, 1) if checkins else None
            if r["exit"] != 0:
                sys.exit(f"bench: orch-agent {name} exited {r['exit']}:\n{r['out']}")
            return r

        out = {}
        agent_step("warm-up")  # the launcher's first start copies the updater into the free zone and seals its backup
        # Starts on a device are minutes apart: past the stat index's 3 s settle time the launcher's check vouches for
        # the updater copy the warm-up just wrote instead of reading it again (src/DeviceAgent/README.md, "Stat index").
        time.sleep(4)
        out["idle, nothing assigned"] = agent_step("idle")
        orch("channel", "set", "bench", "stable", "1", "--reason", "bench", token=token, server=server)
        out["first install"] = agent_step("install")
        assert digest(client) == digest(trees["r1"]), "orch: installed tree differs from release 1"
        orch("channel", "set", "bench", "stable", "2", "--reason", "bench", token=token, server=server)
        out["upgrade 1 -> 2"] = agent_step("upgrade")
        assert digest(client) == digest(trees["r2"]), "orch: upgraded tree differs from release 2"
        apply_damage(client, trees["repair"])
        out["repair"] = agent_step("repair")
        assert digest(client) == digest(trees["r2"]), "orch: repaired tree differs from release 2"
        # A start at least 3 s after the repair: the stat index's settle time (src/DeviceAgent/README.md, "Stat index"),
        # so this start's check of the tree, which reads every file the repair swapped in, can vouch for them; the next
        # start then reads none.
        time.sleep(4)
        out["idle, release 2 installed"] = agent_step("idle")
        out["idle, release 2 installed, next start"] = agent_step("idle")
        if a.idle_repeats:
            out["_idle_repeats_ms"] = [agent_step("idle")["first_checkin_ms"] for _ in range(a.idle_repeats)]
        if a.strace:
            t0 = time.time()
            subprocess.run(["strace", "-f", "-ttt", "-o", a.strace, "-e", "trace=execve,connect,sendto,write,openat,clone3,clone,exit_group",
                            *launch], capture_output=True, text=True)
            out["_strace_start"] = t0
        sealed = [f for f in os.listdir(hidden) if f.startswith("updater.bak")]
        zones = {
            "virtual (launcher + updater/)": tree_bytes(virt, ["orch-agent", "libsodium.so"]) + tree_bytes(f"{virt}/updater"),
            "hidden (sealed backup)": sum(os.path.getsize(f"{hidden}/{f}") for f in sealed),
            "free (updater/)": tree_bytes(f"{free}/updater"),
        }
        out["_updater_zones"] = zones
        out["_binary"] = os.path.getsize(f"{a.agent_dir}/orch-agent")
        out["_nginx"] = nginx
        return out
    finally:
        node.send_signal(signal.SIGTERM)
        try:
            node.wait(30)
        except subprocess.TimeoutExpired:
            node.kill()


# ---------------------------------------------------------------- casync

def bench_casync(trees, nginx):
    cs = f"{W}/casync"
    os.makedirs(f"{cs}/srv", exist_ok=True)
    for v, tree in (("1", trees["r1"]), ("2", trees["r2"])):
        run(["casync", "make", f"--store={cs}/srv/store", f"{cs}/srv/r{v}.caidx", tree])
    url = f"{nginx.base}casync"
    dev = f"{cs}/device"
    os.makedirs(dev)
    out = {}
    out["first install"] = step(nginx, [["casync", "extract", f"--store={url}/store", f"{url}/r1.caidx", f"{dev}/r1"]])
    assert digest(f"{dev}/r1") == digest(trees["r1"]), "casync: r1 differs"
    # a new tree beside the old one, the old one as seed, unchanged files hard-linked (orch keeps unchanged files too)
    out["upgrade 1 -> 2"] = step(nginx, [["casync", "extract", f"--store={url}/store", f"--seed={dev}/r1", "--hardlink=yes",
                                          f"{url}/r2.caidx", f"{dev}/r2"]])
    assert digest(f"{dev}/r2") == digest(trees["r2"]), "casync: r2 differs"
    apply_damage(f"{dev}/r2", trees["repair"])
    # in place: casync seeds from the existing output and rewrites what differs
    out["repair"] = step(nginx, [["casync", "extract", f"--store={url}/store", f"{url}/r2.caidx", f"{dev}/r2"]])
    out["_repaired"] = digest(f"{dev}/r2") == digest(trees["r2"])
    return out


# ---------------------------------------------------------------- ostree

def bench_ostree(trees, nginx):
    os_ = f"{W}/ostree"
    srv = f"{os_}/srv/repo"
    os.makedirs(srv)
    run(["ostree", f"--repo={srv}", "init", "--mode=archive"])
    for v, tree in (("1", trees["r1"]), ("2", trees["r2"])):
        run(["ostree", f"--repo={srv}", "commit", "--branch=bench", f"--subject=r{v}", f"--tree=dir={tree}", "--no-xattrs"])
    run(["ostree", f"--repo={srv}", "summary", "-u"])
    commits = run(["ostree", f"--repo={srv}", "log", "bench"])
    c2, c1 = re.findall(r"^commit ([0-9a-f]{64})", commits, re.M)[:2]
    repo = f"{os_}/device/repo"
    os.makedirs(repo)
    run(["ostree", f"--repo={repo}", "init", "--mode=bare"])
    run(["ostree", f"--repo={repo}", "remote", "add", "--no-gpg-verify", "origin", f"{nginx.base}ostree/srv/repo"])
    pull = lambda rev: ["ostree", f"--repo={repo}", "pull", "origin", rev]
    checkout = lambda rev, dst, *extra: ["ostree", f"--repo={repo}", "checkout", *extra, rev, dst]
    d1, d2 = f"{os_}/device/deploy-1", f"{os_}/device/deploy-2"
    out = {}
    out["first install"] = step(nginx, [pull(c1), checkout(c1, d1)])
    assert digest(d1) == digest(trees["r1"]), "ostree: r1 differs"
    out["upgrade 1 -> 2"] = step(nginx, [pull(c2), checkout(c2, d2)])
    assert digest(d2) == digest(trees["r2"]), "ostree: r2 differs"
    apply_damage(d2, trees["repair"])
    # The checkout hard-links the repo's objects, so damage in place is damage to the objects: fsck finds and deletes
    # them, pull fetches them again, and a union checkout relinks the deleted and damaged files.
    fsck = ["ostree", f"--repo={repo}", "fsck", "--delete"]
    mark = nginx.mark()
    parts = [measure(fsck), measure(pull(c2)), measure(checkout(c2, d2, "--union"))]
    r = combine(parts)
    rows = nginx.since(mark)
    r.update(fetched=sum(x["sent"] for x in rows), sent_up=sum(x["req"] for x in rows), requests=len(rows), rows=rows)
    r["exit"] = max(p["exit"] for p in parts[1:])  # fsck exits non-zero when it found corruption: that is its job
    out["repair"] = r
    out["_repaired"] = digest(d2) == digest(trees["r2"])
    return out


# ---------------------------------------------------------------- main

def main():
    if os.path.exists(W):
        shutil.rmtree(W)
    os.makedirs(f"{W}/trees")
    trees = make_trees()
    # one static root for all three: /orch -> the node's store, /casync, /ostree
    srv = f"{W}/srv"
    os.makedirs(srv)
    os.symlink(f"{W}/orch/store", f"{srv}/orch")
    os.symlink(f"{W}/casync/srv", f"{srv}/casync")
    os.symlink(f"{W}/ostree", f"{srv}/ostree")
    holder = {}

    def factory(node_port):
        holder["nginx"] = Nginx(srv, node_port)
        return holder["nginx"]

    results = {"trees": {k: v for k, v in trees.items() if k not in ("r1", "r2")}, "label": a.label}
    try:
        o = bench_orch(trees, factory)
        nginx = o.pop("_nginx")
        results["orch"] = o
        if not a.orch_only:
            results["casync"] = bench_casync(trees, nginx)
            results["ostree"] = bench_ostree(trees, nginx)
    finally:
        if "nginx" in holder:
            holder["nginx"].stop()
    for tool in ("orch", "casync", "ostree"):
        for k, v in results.get(tool, {}).items():
            if isinstance(v, dict) and "rows" in v:
                v["rows"] = len(v["rows"])
    with open(a.json, "w") as fh:
        json.dump(results, fh, indent=2)


main()
