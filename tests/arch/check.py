#!/usr/bin/env python3
"""Architecture checks on src-tauri/ (run by tests/arch/suite.sh, part of tests/all.sh):

1. No import cycle between top-level modules: an edge A -> B for every `crate::B` path
   (in `use` or inline) in a file of module A; any strongly connected component of more
   than one module is a failure, printed with the files that make each edge.
2. The front ends never reach the store: no `store.` access and no `crate::store` import
   in src-tauri/http/ or src-tauri/desktop/.
3. `cli/` never imports `desktop/`, and `desktop/` never imports `cli/`.
4. The front ends reach the keychain through the Gateway: no `Vault` (the keychain
   handle; `Secret` and `VaultError` are plain data) in src-tauri/cli/, http/ or desktop/,
   apart from the files in VAULT_DEBTS, which are still to move behind the Gateway.

Usage: python3 tests/arch/check.py [--edges] [SRC_DIR]   (exit 1 on a violation;
--edges also prints every edge)
"""
import re, sys
from collections import defaultdict
from pathlib import Path

src = Path(next((a for a in sys.argv[1:] if not a.startswith("--")), None) or Path(__file__).resolve().parents[2] / "src-tauri")
modules = {p.stem if p.is_file() else p.name for p in src.iterdir()
           if (p.is_file() and p.suffix == ".rs" and p.stem not in ("lib", "main", "build")) or (p.is_dir() and (p / "mod.rs").exists())}

def module_of(f: Path) -> str:
    rel = f.relative_to(src).parts
    return rel[0][:-3] if len(rel) == 1 else rel[0]

edges = defaultdict(set)          # (a, b) -> files
comment = re.compile(r"//.*?$", re.M)
for f in src.rglob("*.rs"):
    if f.name in ("lib.rs", "main.rs", "build.rs"):
        continue
    a = module_of(f)
    text = comment.sub("", f.read_text())
    # `#[cfg(test)] mod tests { ... }` may import anything it tests; cut the test module.
    cut = text.find("#[cfg(test)]\nmod tests")
    if cut >= 0:
        text = text[:cut]
    targets = set(re.findall(r"\bcrate::([a-z_][a-z0-9_]*)", text))
    for block in re.findall(r"use crate::\{([^;]*)\};", text, re.S):
        targets |= set(re.findall(r"(?:^|[,{\s])([a-z_][a-z0-9_]*)(?=::|\s*[,}]|$)", block))
    for b in targets:
        if b in modules and b != a:
            edges[(a, b)].add(str(f.relative_to(src)))

if "--edges" in sys.argv:
    for (a, b) in sorted(edges):
        print(f"{a} -> {b}")

graph = defaultdict(set)
for (a, b) in edges:
    graph[a].add(b)

# Tarjan's strongly connected components.
index, low, on, stack, sccs, counter = {}, {}, set(), [], [], [0]
def visit(v):
    index[v] = low[v] = counter[0]; counter[0] += 1
    stack.append(v); on.add(v)
    for w in graph[v]:
        if w not in index:
            visit(w); low[v] = min(low[v], low[w])
        elif w in on:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        comp = []
        while True:
            w = stack.pop(); on.discard(w); comp.append(w)
            if w == v:
                break
        sccs.append(comp)
sys.setrecursionlimit(10000)
for v in sorted(modules):
    if v not in index:
        visit(v)

failed = False
for comp in sccs:
    if len(comp) > 1:
        failed = True
        print(f"FAIL import cycle among: {', '.join(sorted(comp))}")
        for (a, b), files in sorted(edges.items()):
            if a in comp and b in comp:
                print(f"     {a} -> {b}: {', '.join(sorted(files))}")

for front in ("http", "desktop"):
    for f in (src / front).rglob("*.rs"):
        text = comment.sub("", f.read_text())
        if re.search(r"\bstore\.", text) or "crate::store" in text:
            failed = True
            print(f"FAIL {f.relative_to(src)} reaches the store (go through the Gateway)")

# Known: `clients import` hands the keychain to client_import::carry_out, and
# `upstream sign-in` builds its UpstreamOAuth; neither has a Gateway method yet.
VAULT_DEBTS = {"cli/clients.rs", "cli/upstream.rs"}
for front in ("cli", "http", "desktop"):
    for f in (src / front).rglob("*.rs"):
        rel = str(f.relative_to(src))
        text = comment.sub("", f.read_text())
        cut = text.find("#[cfg(test)]\nmod tests")
        if cut >= 0:
            text = text[:cut]
        if rel not in VAULT_DEBTS and re.search(r"\bVault::|\bvault::Vault\b|[{,]\s*Vault\s*[,}]|[<&]Vault\b", text):
            failed = True
            print(f"FAIL {rel} uses the keychain directly (go through the Gateway)")

for a, b in (("cli", "desktop"), ("desktop", "cli")):
    if (a, b) in edges:
        failed = True
        print(f"FAIL {a} imports {b}: {', '.join(sorted(edges[(a, b)]))}")

print(f"{len(modules)} modules, {len(graph and edges)} import edges: " + ("FAILED" if failed else "no cycle, front ends clean"))
sys.exit(1 if failed else 0)
