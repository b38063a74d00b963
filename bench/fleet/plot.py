#!/usr/bin/env python3
"""Plots each fleet-<N>.csv written by FleetBench as one SVG (no dependencies):
plot.py <out-dir> <csv>...  ->  <out-dir>/fleet-progress.svg   (fleet-<N>.csv or fleet-<N>-<note>.csv)
Top: share of the fleet the rollout reports succeeded, over seconds since the rollout was created.
Bottom: journal events written per second (10 s moving average), the node's persistence rate."""
import csv, os, re, sys

out = sys.argv[1]
series = []
for path in sys.argv[2:]:
    rows = list(csv.DictReader(open(path)))
    if not rows or "rollout_succeeded" not in rows[0]:
        continue
    # fleet-<N>.csv, or fleet-<N>-<note>.csv for a kept run that did not finish (the note labels it).
    m = re.fullmatch(r"fleet-(\d+)(?:-(.+))?\.csv", os.path.basename(path))
    if not m:
        continue
    n, note = int(m.group(1)), m.group(2)
    t = [float(r["seconds"]) for r in rows]
    ok = [100.0 * int(r["rollout_succeeded"]) / n for r in rows]
    ev = [int(r["journal_events"]) for r in rows]
    rate = []
    for i in range(len(rows)):
        j = max(0, i - 10)
        rate.append((ev[i] - ev[j]) / (t[i] - t[j]) if t[i] > t[j] else 0.0)
    series.append((n, t, ok, rate, ok[-1] < 100.0, note))
series.sort(key=lambda s: (s[0], s[5] or ""))
W, PH, L, R, T, GAP = 800, 300, 80, 20, 40, 70
H = T + PH + GAP + PH + 50
colors = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e"]
xmax = max((max(s[1]) for s in series), default=1) or 1
svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
       f'<rect width="{W}" height="{H}" fill="white"/>',
       f'<text x="{W/2}" y="22" text-anchor="middle" font-size="14">Rollout through POST /admin/v1/rollouts: one node (SQLite), simulated devices in the same process</text>']

def panel(top, ymax, ylabel, pick, fmt):
    bottom = top + PH
    sx = lambda x: L + (W - L - R) * x / xmax
    sy = lambda y: bottom - PH * y / ymax
    svg.append(f'<line x1="{L}" y1="{bottom}" x2="{W-R}" y2="{bottom}" stroke="black"/><line x1="{L}" y1="{top}" x2="{L}" y2="{bottom}" stroke="black"/>')
    for i in range(6):
        x, y = xmax * i / 5, ymax * i / 5
        svg.append(f'<line x1="{sx(x):.1f}" y1="{bottom}" x2="{sx(x):.1f}" y2="{top}" stroke="#ddd"/><text x="{sx(x):.1f}" y="{bottom+16}" text-anchor="middle">{x:.0f}</text>')
        svg.append(f'<line x1="{L}" y1="{sy(y):.1f}" x2="{W-R}" y2="{sy(y):.1f}" stroke="#ddd"/><text x="{L-6}" y="{sy(y)+4:.1f}" text-anchor="end">{fmt(y)}</text>')
    mid = (top + bottom) / 2
    svg.append(f'<text x="18" y="{mid}" text-anchor="middle" transform="rotate(-90 18 {mid})">{ylabel}</text>')
    svg.append(f'<text x="{(L+W-R)/2}" y="{bottom+34}" text-anchor="middle">seconds since the rollout was created</text>')
    for k, s in enumerate(series):
        c = colors[k % len(colors)]
        pts = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in zip(s[1], pick(s)))
        svg.append(f'<polyline fill="none" stroke="{c}" stroke-width="2" points="{pts}"/>')
        label = f"{s[0]:,} devices" + (f" ({s[5].replace('-', ' ')})" if s[5] else " (stopped before completion)" if s[4] else "")
        svg.append(f'<text x="{L+10}" y="{top+16+16*k}" fill="{c}">{label}</text>')

panel(T, 100, "% of the fleet succeeded (rollout view)", lambda s: s[2], lambda y: f"{y:.0f}")
rmax = max((max(s[3]) for s in series), default=1) or 1
panel(T + PH + GAP, rmax * 1.1, "journal events / s (10 s avg)", lambda s: s[3], lambda y: f"{y:.0f}")
svg.append("</svg>")
open(os.path.join(out, "fleet-progress.svg"), "w").write("\n".join(svg))
