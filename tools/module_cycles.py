#!/usr/bin/env python3
"""Fails when two modules of a crate import each other (`crate::a` in b and `crate::b` in a).

Usage: tools/module_cycles.py SRC_DIR...   (each a crate's src/)

A module's imports are the `crate::...` paths in its code outside `#[cfg(test)]` blocks (which by this
project's convention close a file) and outside comments; a path into a child module counts for the module
the path names, so `crate::oip::tensor` in a file is an import of `oip::tensor`.
"""
import os
import re
import sys


def module_name(src, path):
    rel = os.path.relpath(path, src)[:-3]
    if rel.endswith("/mod"):
        rel = rel[: -len("/mod")]
    return rel.replace(os.sep, "::")


def imports(path):
    found = set()
    with open(path, encoding="utf-8") as f:
        for line in f:
            code = line.strip()
            if code.startswith("#[cfg(test)]"):
                break
            if code.startswith("//"):
                continue
            found.update(re.findall(r"crate::((?:[a-z_0-9]+::)*[a-z_0-9]+)", code))
            grouped = re.match(r"use crate::\{(.*)", code)
            if grouped:
                found.update(re.findall(r"\b([a-z_0-9]+)\b(?:::|,|\})", grouped.group(1)))
    return found


def cycles(src):
    graph = {}
    for directory, _, files in os.walk(src):
        if os.sep + "bin" in directory[len(src):]:
            continue
        for name in files:
            if name.endswith(".rs"):
                path = os.path.join(directory, name)
                module = module_name(src, path)
                if module not in ("lib", "main"):
                    graph[module] = imports(path)

    def resolve(path):
        parts = path.split("::")
        for end in range(len(parts), 0, -1):
            candidate = "::".join(parts[:end])
            if candidate in graph:
                return candidate
        return None

    edges = {m: {resolve(p) for p in ps} - {None, m} for m, ps in graph.items()}
    # A module may use its own parent's items (`crate::oip` in `oip::tensor`): not a circle.
    edges = {m: {d for d in ds if not m.startswith(d + "::") and not d.startswith(m + "::")} for m, ds in edges.items()}
    return sorted((a, b) for a in edges for b in edges[a] if a < b and a in edges.get(b, ()))


def main(dirs):
    found = [(src, a, b) for src in dirs for a, b in cycles(src)]
    for src, a, b in found:
        print(f"{src}: `{a}` and `{b}` import each other")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
