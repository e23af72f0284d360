#!/usr/bin/env python3
"""check-layers: the file-level call graph of libluo and luod has no cycle.

Usage: check-layers.py SRCDIR [--graph]
       check-layers.py --self-test

For each tree checked (src/lib, src/luod, src/luoctl), universal-ctags lists
the functions every C file defines; a file depends on another when it names
a function (calls it, or takes its address) that only the other defines
with external linkage. The check fails, naming the files and one function
per edge, when:

  - the graph of a tree has a cycle (a strongly connected set of two or
    more files): a layer that calls back up;
  - a C file under src/ is longer than MAX_LINES (the allocator excepted);
  - a tree's LAYERS file (if it has one) orders its folders, and a file
    calls a file in a folder listed after its own (upward).

--graph prints every edge ("caller.c -> callee.c: function"), to see the
layers. --self-test runs the check on small trees it writes, with a cycle,
an upward call, a long file, and none of these, and checks it fails the
first three and passes the last. TAP output; exit 1 on any failure, 77 if
ctags is missing.
"""

import os
import re
import shutil
import subprocess
import sys

MAX_LINES = 900
# The allocator is one state machine over a hostile region; split, its
# invariants would cross files. The issue that set the limit excepts it.
EXCEPTED = {"src/lib/heap.c", "src/lib/base/heap.c", "src/lib/arena/heap.c",
            "src/lib/model/heap.c", "src/lib/core/heap.c"}
TREES = ("src/lib", "src/luod", "src/luoctl")

# Comments, strings and character literals, removed before looking for names.
STRIP = re.compile(r'//[^\n]*|/\*.*?\*/|"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\'', re.S)
NAME = re.compile(r"\b([A-Za-z_]\w*)\b")
TAG = re.compile(r"\b(?:struct|union|enum)\s+[A-Za-z_]\w*")


def c_files(root, tree):
    out = []
    for d, _, names in os.walk(os.path.join(root, tree)):
        for n in names:
            if n.endswith(".c"):
                out.append(os.path.relpath(os.path.join(d, n), root))
    return sorted(out)


def definitions(root, files):
    """name -> files defining it with external linkage; file -> its statics."""
    external, static = {}, {}
    if not files:
        return external, static
    res = subprocess.run(["ctags", "-f", "-", "--language-force=C", "--kinds-C=f",
                          "--fields=+f"] + files, cwd=root, capture_output=True,
                         text=True, check=True)
    for line in res.stdout.splitlines():
        parts = line.split("\t")
        if len(parts) < 3:
            continue
        name, path = parts[0], parts[1]
        if "file:" in parts[3:]:
            static.setdefault(path, set()).add(name)
        else:
            external.setdefault(name, set()).add(path)
    return external, static


def edges_of(root, files, external, static):
    """(caller, callee) -> one function that makes the edge."""
    edges = {}
    for f in files:
        with open(os.path.join(root, f), encoding="utf-8", errors="replace") as fh:
            text = STRIP.sub(" ", fh.read())
        # A struct, union or enum tag is no call, even named like a
        # function (luo.h's struct luo_timings and luo_timings()).
        text = TAG.sub(" ", text)
        own = static.get(f, set())
        for name in set(NAME.findall(text)):
            if name in own or name not in external:
                continue
            definers = external[name]
            if f in definers:
                continue
            for callee in definers:
                edges.setdefault((f, callee), name)
    return edges


def cycles(files, edges):
    """Strongly connected sets of two or more files (Tarjan, iterative)."""
    succ = {f: [] for f in files}
    for a, b in edges:
        succ[a].append(b)
    index, low, on, stack, out = {}, {}, set(), [], []
    counter = [0]
    for start in files:
        if start in index:
            continue
        work = [(start, 0)]
        while work:
            v, i = work.pop()
            if i == 0:
                index[v] = low[v] = counter[0]
                counter[0] += 1
                stack.append(v)
                on.add(v)
            if i < len(succ[v]):
                work.append((v, i + 1))
                w = succ[v][i]
                if w not in index:
                    work.append((w, 0))
                elif w in on:
                    low[v] = min(low[v], index[w])
                continue
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[v])
    return out


def layer_order(root, tree):
    path = os.path.join(root, tree, "LAYERS")
    if not os.path.exists(path):
        return None
    order = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            line = line.split("#", 1)[0].strip()
            if line:
                order.append(line)
    return order


def folder_of(tree, f):
    rel = os.path.relpath(f, tree)
    return rel.split(os.sep, 1)[0] if os.sep in rel else "."


def self_test():
    import tempfile
    cases = {
        "a cycle": ({"src/lib/a.c": "int b(void);\nint a(void) { return b(); }\n",
                     "src/lib/b.c": "int a(void);\nint b(void) { return a(); }\n"}, 1),
        "an upward call": ({"src/lib/LAYERS": "base\ncore\n",
                            "src/lib/base/a.c": "int b(void);\nint a(void) { return b(); }\n",
                            "src/lib/core/b.c": "int b(void) { return 1; }\n"}, 1),
        "a long file": ({"src/lib/a.c": "int a(void) { return 0; }\n" + "\n" * MAX_LINES}, 1),
        "a struct tag named like a function of a higher layer": (
            {"src/lib/LAYERS": "base\ncore\n",
             "src/lib/base/a.c": "struct t { int x; };\nint a(const struct t *p) { return p->x; }\n",
             "src/lib/core/b.c": "struct t;\nint t(void) { return 1; }\n"}, 0),
        "layers called downward, statics of the same name": (
            {"src/lib/LAYERS": "base\ncore\n",
             "src/lib/base/a.c": "static int b(void) { return 0; }\nint a(void) { return b(); }\n",
             "src/lib/core/b.c": "int a(void);\nint b(void) { return a(); /* b() */ }\n"}, 0),
    }
    n, bad = 0, 0
    for what, (tree, want) in cases.items():
        with tempfile.TemporaryDirectory() as d:
            for path, text in tree.items():
                os.makedirs(os.path.join(d, os.path.dirname(path)), exist_ok=True)
                with open(os.path.join(d, path), "w", encoding="utf-8") as fh:
                    fh.write(text)
            res = subprocess.run([sys.executable, __file__, d], capture_output=True, text=True)
        n += 1
        ok = res.returncode == want
        bad += not ok
        print(("ok" if ok else "not ok") + f" {n} - {what}: exit {res.returncode} (want {want})")
        if not ok:
            for line in res.stdout.splitlines():
                print("#   " + line)
    print(f"1..{n}")
    return 1 if bad else 0


def main():
    if sys.argv[1:2] == ["--self-test"]:
        if not shutil.which("ctags"):
            print("1..0 # SKIP universal-ctags is not installed")
            return 77
        return self_test()
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    root = sys.argv[1]
    show = "--graph" in sys.argv[2:]
    if not shutil.which("ctags"):
        print("1..0 # SKIP universal-ctags is not installed")
        return 77
    failures, n = 0, 0

    def report(ok, what, detail=()):
        nonlocal failures, n
        n += 1
        print(("ok" if ok else "not ok") + f" {n} - {what}")
        for d in detail:
            print("#   " + d)
        if not ok:
            failures += 1

    for tree in TREES:
        files = c_files(root, tree)
        if not files:
            continue
        external, static = definitions(root, files)
        edges = edges_of(root, files, external, static)
        if show:
            for (a, b), name in sorted(edges.items()):
                print(f"# {a} -> {b}: {name}")
        found = cycles(files, edges)
        detail = []
        for comp in found:
            detail.append("cycle: " + ", ".join(comp))
            inside = set(comp)
            for (a, b), name in sorted(edges.items()):
                if a in inside and b in inside:
                    detail.append(f"  {a} -> {b}: {name}()")
        report(not found, f"{tree}: the file-level call graph ({len(files)} files, "
               f"{len(edges)} edges) has no cycle", detail)

        order = layer_order(root, tree)
        if order is not None:
            rank = {name: i for i, name in enumerate(order)}
            bad = []
            for f in files:
                if folder_of(tree, f) not in rank:
                    bad.append(f"{f}: its folder is not in {tree}/LAYERS")
            for (a, b), name in sorted(edges.items()):
                fa, fb = folder_of(tree, a), folder_of(tree, b)
                if fa in rank and fb in rank and rank[fb] > rank[fa]:
                    bad.append(f"{a} ({fa}) calls up into {b} ({fb}): {name}()")
            report(not bad, f"{tree}: every file calls only its own layer or the ones "
                   f"below ({' > '.join(reversed(order))})", bad)

    long_files = []
    for d, _, names in os.walk(os.path.join(root, "src")):
        for nm in names:
            if not nm.endswith(".c"):
                continue
            f = os.path.relpath(os.path.join(d, nm), root)
            with open(os.path.join(root, f), encoding="utf-8", errors="replace") as fh:
                lines = sum(1 for _ in fh)
            if lines > MAX_LINES and f not in EXCEPTED:
                long_files.append(f"{f}: {lines} lines")
    report(not long_files, f"no C file under src/ over {MAX_LINES} lines (the allocator excepted)",
           sorted(long_files))
    print(f"1..{n}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
