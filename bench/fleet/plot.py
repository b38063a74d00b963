#!/usr/bin/env python3
"""Plots devices on the target version over time for each fleet-<N>.csv: plot.py <out-dir> <csv>..."""
import csv, os, sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt

out = sys.argv[1]
fig, ax = plt.subplots(figsize=(8, 4.5))
for path in sys.argv[2:]:
    rows = list(csv.DictReader(open(path)))
    if not rows:
        continue
    n = os.path.basename(path).removeprefix("fleet-").removesuffix(".csv")
    ax.plot([float(r["seconds"]) for r in rows], [int(r["installed"]) for r in rows], label=f"{n} devices: installed")
ax.set_xlabel("seconds since the rollout started")
ax.set_ylabel("devices with the release installed")
ax.set_title("Rollout progress, one node (SQLite), simulated devices in one process")
ax.grid(True, alpha=0.3)
ax.legend()
fig.tight_layout()
fig.savefig(os.path.join(out, "fleet-progress.png"), dpi=110)
