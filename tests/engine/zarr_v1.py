#!/usr/bin/python3
"""A Zarr container of layout version 1, as the build before version 2 made it, in TAP.

tests/store/zarr-v1/ holds v1.yaml and the container out/s1.zarr it made
(images, repeats, a 1-D mask with axes and two tables, every array at
<stage>/<name>, multiscales on the stage groups). On a copy:

  * `sirenstack inspect` (text and --json) opens it, says layout version 1 and
    lists every stage and array as zarr-python finds them at <stage>/<name>;
  * `sirenstack export` of every array gives what zarr-python reads there;
  * rerunning v1.yaml reuses every stage and changes nothing;
  * a run that would add a stage is refused: exit 4, one line that names the
    layout version and tells to run into a new output folder; nothing changes;
  * that run into a new output folder makes a version 2 container.
"""
import json
import os
import shutil
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../lib"))

import sslib  # noqa: E402

T = sslib.Tap()
FIXTURE = os.path.join(sslib.SOURCE_ROOT, "tests", "store", "zarr-v1")
STAGES = ["raw", "mean", "ip", "score"]


def zarr_members(cont):
    """'stage/name' -> zarr array at <stage>/<name> (the version-1 places)."""
    g = sslib.zarr.open_group(cont, mode="r")
    return {f"{st}/{name}": a for st in STAGES for name, a in g[st].arrays()}


def check_inspect(cont, members):
    p = sslib.run(["inspect", cont])
    lines = p.stdout.splitlines()
    T.check(p.returncode == 0 and lines[0].endswith("(zarr, layout version 1)"),
            "inspect: opens the version-1 container and says layout version 1", sslib.describe(p))
    order = [ln.split()[0][1:] for ln in lines[1:] if ln.startswith("/")]
    T.check(order == STAGES, "inspect: the stages in commit order", order)
    p, js = sslib.inspect_json(cont)
    if not T.check(isinstance(js, dict), "inspect --json parses", sslib.describe(p)):
        return
    listed = {f"{st}/{n}": v for st in js for n, v in js[st].get("arrays", {}).items()}
    T.check(sorted(listed) == sorted(members), "inspect --json: every array and table zarr-python finds",
            (sorted(listed), sorted(members)))
    bad = [k for k, v in listed.items() if k in members and
           (list(v.get("shape", [])) if "shape" in v else [v.get("rows")]) != list(members[k].shape)]
    T.check(not bad, "inspect --json: shapes (rows of tables) as zarr-python reads them", bad)


def check_export(tmp, cont, members):
    import numpy as np
    bad = []
    arrays = [k for k, a in members.items() if a.dtype.names is None]
    for k in arrays:
        dst = os.path.join(tmp, k.replace("/", "_") + ".npy")
        p = sslib.run(["export", cont, k, "-o", dst])
        if p.returncode != 0:
            bad.append(f"{k}: {sslib.describe(p)}")
            continue
        a, want = np.load(dst), members[k][...]
        if a.dtype != want.dtype or not np.array_equal(a, want):
            bad.append(f"{k}: {a.dtype}{a.shape} vs {want.dtype}{want.shape}")
    T.check(len(arrays) == 6 and not bad, f"export: the {len(arrays)} arrays equal what zarr-python reads",
            "\n".join(bad))
    for k in (k for k, a in members.items() if a.dtype.names):
        dst = os.path.join(tmp, k.replace("/", "_") + ".csv")
        p = sslib.run(["export", cont, k, "-o", dst])
        rows = open(dst).read().splitlines() if p.returncode == 0 else []
        T.check(len(rows) == members[k].shape[0] + 1, f"export: table {k} to CSV, one line per row",
                sslib.describe(p))


def main():
    if sslib.zarr is None:
        print("1..0 # SKIP zarr-python not available")
        return 0
    tmp = T.tmpdir("zarr-v1")
    work = os.path.join(tmp, "v1")
    shutil.copytree(FIXTURE, work)
    cfg = os.path.join(work, "v1.yaml")
    cont = os.path.join(work, "out", "s1.zarr")
    with open(os.path.join(cont, ".zattrs")) as f:
        T.check(json.load(f) == {"sirenstack": {"format": "zarr", "layout_version": 1}},
                "the fixture is a version-1 container")
    members = zarr_members(cont)
    T.check(len(members) == 8, f"zarr-python finds {len(members)} arrays and tables at <stage>/<name>",
            sorted(members))
    T.guard("inspect", check_inspect, cont, members)
    T.guard("export", check_export, tmp, cont, members)

    before = sslib.stage_hashes(cont, "zarr")
    p, _, ran, reused = sslib.run_logged(cfg, tmp)
    T.check(p.returncode == 0 and not ran and sslib.stages_ran(reused) == set(STAGES),
            "rerunning v1.yaml reuses every stage of the version-1 container", sslib.describe(p))
    T.check(sslib.stage_hashes(cont, "zarr") == before, "and leaves every stage byte-identical")

    changed = os.path.join(work, "changed.yaml")
    with open(cfg) as f:
        text = f.read()
    with open(changed, "w") as f:
        f.write(text.replace("keep_every: 2", "keep_every: 3"))
    p = sslib.run(["run", changed, "-q"])
    err = p.stderr.strip().splitlines()
    T.check(p.returncode == 4 and len(err) == 1 and "layout version 1" in err[0] and "new output folder" in err[0]
            and "s1.zarr" in err[0], "a run that would add a stage: exit 4, one line naming the container, its "
            "layout version and the remedy", sslib.describe(p))
    T.check(sslib.stage_hashes(cont, "zarr") == before and not os.path.exists(os.path.join(cont, "OME")),
            "the refused run changes no stage and adds no OME group")

    with open(changed, "w") as f:
        f.write(text.replace("keep_every: 2", "keep_every: 3").replace("output: out", "output: out2"))
    p = sslib.run(["run", changed, "-q"])
    new = os.path.join(work, "out2", "s1.zarr")
    ok = p.returncode == 0 and os.path.exists(new)
    if ok:
        with open(os.path.join(new, ".zattrs")) as f:
            ok = json.load(f).get("sirenstack", {}).get("layout_version") == 2
    T.check(ok, "the same run into a new output folder makes a version-2 container", sslib.describe(p))
    return T.done()


if __name__ == "__main__":
    sys.exit(main())
