#!/usr/bin/env python3
"""Fails when modules of a crate import each other in a circle: `crate::b` in a and `crate::a` in b, or longer
(a → b → c → a).

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
    return circles(edges)


def circles(edges):
    """The strongly connected components of more than one module (Tarjan's algorithm), each sorted."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(module):
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for other in sorted(edges.get(module, ())):
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in on_stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            component = []
            while True:
                other = stack.pop()
                on_stack.discard(other)
                component.append(other)
                if other == module:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(edges):
        if module not in index:
            visit(module)
    return sorted(found)


def main(dirs):
    found = [(src, circle) for src in dirs for circle in cycles(src)]
    for src, circle in found:
        print(f"{src}: these modules import each other in a circle: " + ", ".join(f"`{m}`" for m in circle))
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
