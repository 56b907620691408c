"""Fails when a locked dependency needs a newer Rust than the workspace's `rust-version` says.

Reads `cargo metadata --locked` on stdin. Our own code's use of newer std items is caught by clippy's
`incompatible_msrv` lint, which reads the same `rust-version`; together they keep it true without a second toolchain.
"""

import json
import sys


def version(text):
    parts = [int(part) for part in text.split(".")]
    return tuple(parts + [0] * (3 - len(parts)))


metadata = json.load(sys.stdin)
members = set(metadata["workspace_members"])
declared = {p["rust_version"] for p in metadata["packages"] if p["id"] in members}
if len(declared) != 1 or None in declared:
    sys.exit(f"msrv: every workspace crate should take rust-version from the workspace, found {sorted(map(str, declared))}")
msrv = declared.pop()
newer = [
    f"{p['name']} {p['version']} needs Rust {p['rust_version']}"
    for p in metadata["packages"]
    if p["id"] not in members and p.get("rust_version") and version(p["rust_version"]) > version(msrv)
]
if newer:
    sys.exit(f"msrv: the workspace says rust-version {msrv}, but:\n  " + "\n  ".join(newer)
             + "\nraise rust-version in Cargo.toml or hold those crates back")
print(f"msrv: rust-version {msrv} covers every locked dependency")
