#!/usr/bin/python3
"""The layers of the source. Each layer is a static library that the build
gives only the include folders of its own layer and those it may use:

    engine   pipeline/engine/   CLI, config, graph, runner, fingerprints, stage context
      |
    stages   stages/            one file per stage type; stage.h is the stage API
      |
    formats  pipeline/formats/  TIFF, file patterns, OME-Zarr export
      |
    store    pipeline/store/    containers (HDF5, Zarr), checksums, the Zarr layer
                                (zarr.c: metadata and chunks, also for the OME-Zarr export)
      |
    base     pipeline/base/     errors, files, canonical JSON, checkpoints

    kernels  kernels/           numeric kernels; they depend on nothing else
                                (the stages and the engine use them)

so the store knows nothing of stages or the engine, kernels nothing of the
project, and stages nothing of the engine (they reach it only through the
ctx_* functions stage.h declares). The compiler refuses an upward include by
name; the one way round it, a relative path ("../x.h"), is refused here.

Every #include "..." of every C file is resolved as the compiler resolves it
(the including file's folder, then its layer's include folders) and must land
in a layer its own may use. Tests, fuzz targets and generated headers are
outside the check.

  check_layers.py              TAP (the 'layers' test)
  check_layers.py --stamp F    as run by every build: one line per violation on
                               stderr and exit 1, or write F and exit 0"""
import os
import re
import sys

sys.dont_write_bytecode = True

ROOT = os.environ.get("SOURCE_ROOT") or os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FOLDER = {
    "kernels": "kernels",
    "base": "pipeline/base",
    "store": "pipeline/store",
    "formats": "pipeline/formats",
    "stages": "stages",
    "engine": "pipeline/engine",
}
# What each layer's library is given as include folders (meson.build of each).
MAY_USE = {
    "kernels": ["kernels"],
    "base": ["base"],
    "store": ["store", "base"],
    "formats": ["formats", "store", "base"],
    "stages": ["stages", "kernels", "formats", "store", "base"],
    "engine": ["engine", "stages", "kernels", "formats", "store", "base"],
}
GENERATED = {"version.h", "ss_build.h", "slurm_template.h"}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def layer_of(rel):
    for layer, folder in sorted(FOLDER.items(), key=lambda kv: -len(kv[1])):
        if rel == folder or rel.startswith(folder + "/"):
            return layer
    return None


def resolve(src, name, layer):
    dirs = [os.path.dirname(src)] + [os.path.join(ROOT, FOLDER[l]) for l in MAY_USE[layer]]
    for d in dirs:
        p = os.path.normpath(os.path.join(d, name))
        if os.path.isfile(p):
            return os.path.relpath(p, ROOT)
    return None


LIBRARY = re.compile(r"static_library\('ss_(\w+)'.*?include_directories:\s*(\[[^\]]*\]|\w+)", re.S)


def meson_includes():
    """The include folders each layer's static_library gets, from its meson.build."""
    given = {}
    for layer, folder in FOLDER.items():
        try:
            text = open(os.path.join(ROOT, folder, "meson.build"), encoding="utf-8").read()
        except OSError:
            continue
        for lib, incs in LIBRARY.findall(text):
            if lib == layer:
                given[layer] = sorted(re.sub(r"_inc$", "", n) for n in re.findall(r"\w+", incs))
    return given


def scan():
    files = []
    for top in ("kernels", "pipeline", "stages"):
        for d, _, names in os.walk(os.path.join(ROOT, top)):
            files += [os.path.join(d, n) for n in names if n.endswith((".c", ".h", ".inc"))]
    bad, stray, edges = [], [], 0
    for f in sorted(files):
        rel = os.path.relpath(f, ROOT)
        mine = layer_of(rel)
        if mine is None:
            stray.append(rel)
            continue
        text = open(f, encoding="utf-8", errors="replace").read()
        for name in INCLUDE.findall(text):
            if os.path.basename(name) in GENERATED:
                continue
            edges += 1
            if ".." in name.split("/"):
                bad.append(f'{rel}: #include "{name}" climbs out of its folder by a relative path')
                continue
            target = resolve(f, name, mine)
            if target is None:
                bad.append(f'{rel} ({mine}): #include "{name}" is not in a layer {mine} may use '
                           f'({", ".join(MAY_USE[mine])})')
                continue
            theirs = layer_of(target)
            if theirs not in MAY_USE[mine]:
                bad.append(f"{rel} ({mine}) includes {target} ({theirs})")
    return files, edges, bad, stray


def main():
    files, edges, bad, stray = scan()
    if len(sys.argv) == 3 and sys.argv[1] == "--stamp":
        for line in stray + bad:
            print(f"layers: {line}", file=sys.stderr)
        if bad or stray:
            return 1
        with open(sys.argv[2], "w") as out:
            out.write(f"{len(files)} files, {edges} includes\n")
        return 0
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../lib"))
    from taplib import Tap
    T = Tap()
    T.check(len(files) > 50 and edges > 100, f"{len(files)} source files, {edges} project includes read")
    T.check(not stray, "every source file sits in a layer's folder", "\n".join(stray))
    T.check(not bad, "every include stays in its layer or one it may use, by name", "\n".join(bad))
    # the check itself must catch an upward include and a relative one
    T.check(layer_of("pipeline/store/store.c") == "store" and layer_of("pipeline/engine/runner.c") == "engine"
            and "engine" not in MAY_USE["store"] and resolve(os.path.join(ROOT, "pipeline/store/store.c"),
                                                             "runner.h", "store") is None,
            "runner.h is out of the store's reach (an include of it from the store would be refused)")
    given = meson_includes()
    T.check(given == {l: sorted(u) for l, u in MAY_USE.items()},
            "each layer's library is given exactly the include folders listed here (its meson.build)",
            "\n".join(f"{l}: meson gives {given.get(l)}, expected {sorted(u)}" for l, u in MAY_USE.items()
                      if given.get(l) != sorted(u)))
    T.done()
    return 0


sys.exit(main())
