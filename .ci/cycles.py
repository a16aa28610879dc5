#!/usr/bin/env python3
"""Finds import cycles between the modules of a crate: `cycles.py crates/NAME/src`.

A module is a file under src (`a/b.rs` and `a/b/mod.rs` are `a::b`); it uses
every module a `crate::...` path in it names (the longest prefix that is a
module). Two modules that reach each other are a cycle. A module may use its
own submodules (a parent declares them) without that counting.
"""
import pathlib
import re
import sys

root = pathlib.Path(sys.argv[1])
modules = {}
for f in root.rglob("*.rs"):
    parts = list(f.relative_to(root).with_suffix("").parts)
    if parts[-1] == "mod" or parts == ["lib"] or parts == ["main"]:
        parts = parts[:-1]
    modules["::".join(parts)] = f.read_text()

graph = {m: set() for m in modules}
for m, text in modules.items():
    for path in re.findall(r"crate((?:::[a-z_][a-z0-9_]*)+)", text):
        segments = path.strip(":").split("::")
        for n in range(len(segments), 0, -1):
            target = "::".join(segments[:n])
            if target in modules:
                break
        else:
            continue
        if target != m and not target.startswith(m + "::") and not m.startswith(target + "::"):
            graph[m].add(target)

# Tarjan's strongly connected components.
index, low, on_stack, stack, cycles, counter = {}, {}, set(), [], [], [0]
sys.setrecursionlimit(10000)


def visit(v):
    index[v] = low[v] = counter[0]
    counter[0] += 1
    stack.append(v)
    on_stack.add(v)
    for w in graph[v]:
        if w not in index:
            visit(w)
            low[v] = min(low[v], low[w])
        elif w in on_stack:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        component = []
        while True:
            w = stack.pop()
            on_stack.discard(w)
            component.append(w)
            if w == v:
                break
        if len(component) > 1:
            cycles.append(sorted(component))


for v in sorted(graph):
    if v not in index:
        visit(v)
for c in cycles:
    print("cycle: " + " <-> ".join(c))
print(f"{root}: {len(cycles)} cycles")
sys.exit(1 if cycles else 0)
