#!/usr/bin/env python3
"""A plugin module's own instructions per request, and where they go, on Node's V8 (host.mjs).

    profile.py count MODULE.wasm CONFIG.json   instructions per request (callgrind; exact from run to run)
    profile.py top MODULE.wasm CONFIG.json     the module's functions by share of its own time (V8's profiler)

V8 runs as Envoy runs it: TurboFan only (Envoy turns Liftoff off), and single-threaded and predictable so that
callgrind counts the same every run. `count` runs the request path twice (5000 and 45000 times) and divides the
difference, so start-up and configuration drop out. For `top`, build the module with names (see README.md).
"""
import collections
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
V8_FLAGS = ["--no-liftoff", "--single-threaded", "--predictable"]


def run(module, config, n, *node_flags, **kwargs):
    cmd = ["node", *V8_FLAGS, *node_flags, os.path.join(HERE, "host.mjs"), module, config, str(n)]
    return subprocess.run(cmd, capture_output=True, text=True, check=True, **kwargs)


def collected(module, config, n):
    if not shutil.which("valgrind"):
        sys.exit("profile.py: valgrind is needed for `count` (make setup installs it)")
    out = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", "node", *V8_FLAGS,
         os.path.join(HERE, "host.mjs"), module, config, str(n)],
        capture_output=True, text=True, check=True,
    )
    found = re.search(r"Collected : (\d+)", out.stderr)
    if not found:
        sys.exit(f"profile.py: no callgrind total in its output:\n{out.stderr[-2000:]}")
    return int(found.group(1))


def count(module, config):
    low, high = 5000, 45000
    per_request = (collected(module, config, high) - collected(module, config, low)) // (high - low)
    print(f"{os.path.basename(module)} with {os.path.basename(config)}: {per_request} instructions per request")


def top(module, config, shown=40):
    with tempfile.TemporaryDirectory() as out:
        run(module, config, 1_000_000, "--cpu-prof", "--cpu-prof-interval", "10", "--cpu-prof-dir", out)
        (path,) = glob.glob(os.path.join(out, "*.cpuprofile"))
        with open(path) as f:
            profile = json.load(f)
    nodes = {node["id"]: node for node in profile["nodes"]}
    samples = collections.Counter(profile["samples"])
    own = collections.Counter()
    for node_id, n in samples.items():
        frame = nodes[node_id]["callFrame"]
        if frame["url"].startswith("wasm://"):
            own[frame["functionName"]] += n
    total = sum(own.values())
    if total == 0:
        sys.exit("profile.py: no samples in the module's code")
    names = list(own)
    if shutil.which("rustfilt"):
        demangled = subprocess.run(["rustfilt"], input="\n".join(names), capture_output=True, text=True).stdout
        names_shown = dict(zip(names, demangled.split("\n")))
    else:
        names_shown = {name: name for name in names}
    print(f"the module's own code: {100 * total / sum(samples.values()):.1f} % of all samples")
    for name, n in own.most_common(shown):
        print(f"{100 * n / total:5.1f} %  {names_shown[name][:150]}")


def main():
    if len(sys.argv) != 4 or sys.argv[1] not in ("count", "top"):
        sys.exit(__doc__)
    mode, module, config = sys.argv[1:]
    {"count": count, "top": top}[mode](module, config)


if __name__ == "__main__":
    main()
