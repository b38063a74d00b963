#!/usr/bin/env python3
"""Prints bench/agent/bench.py's measurements as markdown: one table per step, then issue 23's targets."""
import json
import sys

r = json.load(open(sys.argv[1]))
t = r["trees"]
MB = 1_000_000


def mb(b):
    return f"{b / 1000:.1f} kB" if b < 100_000 else f"{b / MB:.2f} MB"


def row(tool, m):
    ok = "" if m["exit"] == 0 else f" (exit {m['exit']})"
    return (f"| {tool}{ok} | {m['rss_kb'] / 1000:.1f} MB | {m['cpu']:.2f} s | {m['wall']:.2f} s | {mb(m['writes'])} | "
            f"{mb(m['fetched'])} in {m['requests']} requests |")


print(f"orch rows: build {r['label']}\n")
print(f"Tree: release 1 = {t['r1_files']} files, {mb(t['r1_bytes'])}; release 2 changes {t['changed']} files "
      f"({mb(t['changed_bytes'])} after the change), adds one ({mb(t['added_bytes'])}) and removes `{t['removed']}`; "
      f"repair = {len(t['repair']['deleted'])} deleted + {len(t['repair']['damaged'])} damaged ({mb(t['repair_bytes'])}).\n")
head = "| tool | peak RSS | CPU (user+sys) | wall | written | fetched over HTTP |\n|---|---|---|---|---|---|"
o = r["orch"]
IDLE = ("idle, nothing assigned", "idle, release 2 installed", "idle, release 2 installed, next start")
for name in (n for n in IDLE if n in o):
    m = o[name]
    print(f"### {name}\n\n{head}\n{row('orch-agent', m)}\n\nfirst check-in {m['first_checkin_ms']} ms after exec "
          "(casync and ostree have no agent that starts idle)\n")
for step in ("first install", "upgrade 1 -> 2", "repair"):
    print(f"### {step}\n\n{head}")
    for tool, label in (("orch", "orch-agent"), ("casync", "casync extract"), ("ostree", "ostree pull + checkout")):
        if step in r.get(tool, {}):
            print(row(label, r[tool][step]))
    print()
for tool in ("casync", "ostree"):
    if tool in r:
        print(f"{tool} repaired the tree exactly: {r[tool].get('_repaired')}")
print()

zones = o["_updater_zones"]
binary = o["_binary"]
upd = sum(zones.values())
changed = t["changed_bytes"] + t["added_bytes"]


def target(what, value, limit, fmt):
    print(f"| {what} | {fmt(value)} | {fmt(limit)} | {'met' if value <= limit else '**not met**'} |")


print("### Targets (issue 23)\n\n| target | measured | limit | |\n|---|---|---|---|")
target("AOT agent linux-x64 (stripped)", binary, 12 * 1024 * 1024, mb)
idles = (("nothing assigned", o[IDLE[0]]), ("release installed", o[IDLE[1]]))
if IDLE[2] in o:
    idles += (("release installed, next start", o[IDLE[2]]),)
for label, m in idles:
    target(f"idle peak RSS ({label})", m["rss_kb"] * 1000, 24 * MB, mb)
    target(f"idle CPU ({label})", m["cpu"], 0.1, lambda v: f"{v:.2f} s")
    target(f"first check-in after exec ({label})", m["first_checkin_ms"] or 1e9, 50, lambda v: f"{v:.0f} ms")
for step in ("first install", "upgrade 1 -> 2", "repair"):
    target(f"{step} peak RSS", o[step]["rss_kb"] * 1000, 40 * MB, mb)
target("first-install CPU", o["first install"]["cpu"], 1.2, lambda v: f"{v:.2f} s")
target("upgrade writes (<= 1.25 x changed + added)", o["upgrade 1 -> 2"]["writes"], 1.25 * changed, mb)
target("repair writes (<= 1.25 x damaged files)", o["repair"]["writes"], 1.25 * t["repair_bytes"], mb)
target("updater bytes, three zones (<= 4 x binary)", upd, 4 * binary, mb)
if o.get("_idle_repeats_ms"):
    print(f"\nfirst check-in of {len(o['_idle_repeats_ms'])} more idle starts (release 2 installed): "
          + ", ".join(f"{v:.0f}" for v in o["_idle_repeats_ms"]) + " ms")
print("\nupdater bytes by zone: " + ", ".join(f"{k} {mb(v)}" for k, v in zones.items()))
