#!/usr/bin/env python3
"""Plots devices with the release installed over time for each fleet-<N>.csv as an SVG (no dependencies):
plot.py <out-dir> <csv>...  ->  <out-dir>/fleet-progress.svg"""
import csv, os, sys

out = sys.argv[1]
series = []
for path in sys.argv[2:]:
    rows = list(csv.DictReader(open(path)))
    if rows:
        n = os.path.basename(path)[len("fleet-"):-len(".csv")]
        series.append((n, [(float(r["seconds"]), int(r["installed"])) for r in rows]))
W, H, L, B, T, R = 760, 420, 70, 50, 40, 20
xmax = max((p[0] for _, pts in series for p in pts), default=1) or 1
ymax = max((p[1] for _, pts in series for p in pts), default=1) or 1
sx = lambda x: L + (W - L - R) * x / xmax
sy = lambda y: H - B - (H - B - T) * y / ymax
colors = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e"]
svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
       f'<rect width="{W}" height="{H}" fill="white"/>',
       f'<text x="{W/2}" y="22" text-anchor="middle" font-size="14">Rollout progress: one node (SQLite), simulated devices in one process</text>',
       f'<line x1="{L}" y1="{H-B}" x2="{W-R}" y2="{H-B}" stroke="black"/>', f'<line x1="{L}" y1="{T}" x2="{L}" y2="{H-B}" stroke="black"/>',
       f'<text x="{(L+W-R)/2}" y="{H-12}" text-anchor="middle">seconds since the rollout started</text>',
       f'<text x="16" y="{(T+H-B)/2}" text-anchor="middle" transform="rotate(-90 16 {(T+H-B)/2})">devices with the release installed</text>']
for i in range(6):
    x, y = xmax * i / 5, ymax * i / 5
    svg.append(f'<line x1="{sx(x)}" y1="{H-B}" x2="{sx(x)}" y2="{T}" stroke="#ddd"/><text x="{sx(x)}" y="{H-B+16}" text-anchor="middle">{x:.0f}</text>')
    svg.append(f'<line x1="{L}" y1="{sy(y)}" x2="{W-R}" y2="{sy(y)}" stroke="#ddd"/><text x="{L-6}" y="{sy(y)+4}" text-anchor="end">{y:.0f}</text>')
for k, (n, pts) in enumerate(series):
    c = colors[k % len(colors)]
    svg.append(f'<polyline fill="none" stroke="{c}" stroke-width="2" points="{" ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in pts)}"/>')
    svg.append(f'<text x="{L+10}" y="{T+16+16*k}" fill="{c}">{n} devices</text>')
svg.append("</svg>")
open(os.path.join(out, "fleet-progress.svg"), "w").write("\n".join(svg))
