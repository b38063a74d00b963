"""CPU per check-in by the module of each perf sample's leaf frame: perf script | perf_leaf.py RATE SECONDS NAME.

RATE check-ins per second during the SECONDS the samples cover (perf record -F 999: one sample ~1 ms of CPU)."""
import collections
import re
import sys

rate, seconds, name = float(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
counts = collections.Counter()
total = 0
for sample in sys.stdin.read().split("\n\n"):
    lines = sample.strip().split("\n")
    if len(lines) < 2:
        continue
    total += 1
    leaf = lines[1].strip()
    managed = re.search(r"\[([A-Za-z][\w.]+)\] ", leaf)  # JIT frames name their assembly in brackets
    if managed and managed.group(1) != "unknown":
        counts[managed.group(1)] += 1
    else:
        dso = re.search(r"\((\S+)\)$", leaf)
        module = dso.group(1).rsplit("/", 1)[-1] if dso else "?"
        counts["jit (other)" if module.startswith("perf-") else module] += 1
us_per_sample = 1e6 / 999
checkins = rate * seconds
print(f"{name}: {total} samples = {total / 999 / seconds:.2f} cores; {total * us_per_sample / checkins:.1f} us of CPU per check-in at {rate:.0f} /s")
for module, n in counts.most_common(20):
    print(f"  {n * us_per_sample / checkins:6.2f} us  {100 * n / total:5.1f} %  {module}")
