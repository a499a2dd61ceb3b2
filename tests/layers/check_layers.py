#!/usr/bin/python3
"""The layers of the source, in TAP: every #include "..." of every C file is
resolved as the compiler resolves it (the including file's folder first, then
the project's include folders) and must point at its own layer or one below:

    engine   pipeline/ (CLI, config, graph, runner, progress, stage context)
      |
    stages   stages/   (one file per stage type, and the stage API stage.h)
      |
    base     pipeline/store/, pipeline/formats/, pipeline/{util,error,canonjson,checkpoint}
      |
    kernels  kernels/  (numeric kernels; depend on nothing else)

so the store knows nothing of stages or the runner, kernels nothing of the
project, and stages nothing of the engine (they reach it only through the
ctx_* functions stage.h declares). Tests, fuzz targets and generated headers
are outside the check."""
import os
import re
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from taplib import Tap  # noqa: E402

ROOT = os.environ.get("SOURCE_ROOT") or os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
INCLUDE_DIRS = [".", "pipeline", "pipeline/store", "stages", "kernels"]
GENERATED = {"version.h", "ss_build.h"}
BASE_FILES = {"util", "error", "canonjson", "checkpoint"}
RANK = {"kernels": 0, "base": 1, "stages": 2, "engine": 3}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def layer_of(rel):
    parts = rel.split("/")
    if parts[0] == "kernels":
        return "kernels"
    if parts[0] == "stages":
        return "stages"
    if parts[0] == "pipeline":
        if len(parts) > 2 and parts[1] in ("store", "formats"):
            return "base"
        if len(parts) == 2 and os.path.splitext(parts[1])[0] in BASE_FILES:
            return "base"
        return "engine"
    return None


def resolve(src, name):
    for d in [os.path.dirname(src)] + [os.path.join(ROOT, i) for i in INCLUDE_DIRS]:
        p = os.path.normpath(os.path.join(d, name))
        if os.path.isfile(p):
            return os.path.relpath(p, ROOT)
    return None


def main():
    T = Tap()
    files = []
    for top in ("kernels", "pipeline", "stages"):
        for d, _, names in os.walk(os.path.join(ROOT, top)):
            files += [os.path.join(d, n) for n in names if n.endswith((".c", ".h", ".inc"))]
    bad, unresolved, edges = [], [], 0
    for f in sorted(files):
        rel = os.path.relpath(f, ROOT)
        mine = layer_of(rel)
        text = open(f, encoding="utf-8", errors="replace").read()
        for name in INCLUDE.findall(text):
            if os.path.basename(name) in GENERATED:
                continue
            target = resolve(f, name)
            if target is None:
                unresolved.append(f"{rel}: {name}")
                continue
            theirs = layer_of(target)
            edges += 1
            if theirs is None or RANK[theirs] > RANK[mine]:
                bad.append(f"{rel} ({mine}) includes {target} ({theirs})")
    T.check(len(files) > 50 and edges > 100, f"{len(files)} source files, {edges} project includes read")
    T.check(not unresolved, "every project include resolves to a file of the tree", "\n".join(unresolved))
    T.check(not bad, "no include points to a higher layer (kernels < base < stages < engine)", "\n".join(bad))
    # the check itself must catch an upward include
    probe = layer_of("pipeline/store/store.c"), layer_of("pipeline/runner.c")
    T.check(probe == ("base", "engine") and RANK[probe[1]] > RANK[probe[0]],
            "the store is below the engine (an include of runner.h from the store would be refused)")
    T.done()


main()
