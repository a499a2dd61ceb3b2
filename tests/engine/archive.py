#!/usr/bin/python3
"""Archive and reanalyse, in TAP: `sirenstack pack`, `verify` of an archive,
`run --from`.

Covered: pack of an HDF5 and of a Zarr container into one HDF5 file with no
external link, moved elsewhere and still read by h5py (every array equal to
the container's), `inspect` and `verify` (intact; a flipped byte in a chunk
named, exit 3; nothing written beside the archive); the archive's
provenance: the config text that produced it, software and library
versions, the stage list with fingerprints; a damaged container is not
packed; `run NEWCONFIG --from ARCHIVE` reuses exactly the stages whose
fingerprint matches (read from the archive) and computes the changed ones and
their dependants into a new container, with results equal to a fresh run of
the new config, the archive byte-identical before and after; --from refuses
a plain container and an archive of another sample.
"""
import os
import shutil
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../lib"))

import sslib  # noqa: E402
from sslib import h5py  # noqa: E402

T = sslib.Tap()
META = ".sirenstack"


def stages(sigma=1.0):
    st = sslib.synth_stages()
    st["gauss"] = {"uses": "filter_gaussian", "inputs": {"image": "median.fused"},
                   "params": {"sigma": [0, sigma, sigma]}}
    st["scores"] = {"uses": "metrics", "inputs": {"reference": "raw.truth",
                                                 "methods": ["mean.fused", "gauss.filtered"]}}
    return st


def archive_arrays(path):
    """'stage/array' -> array of an archive, without its own group."""
    return {k: v for k, v in sslib.read_arrays(path, "hdf5").items() if not k.startswith(META + "/")}


def links_of(path):
    kinds = set()
    with h5py.File(path, "r", locking=False) as f:
        def walk(g):
            for k in g:
                kinds.add(type(g.get(k, getlink=True)).__name__)
                if isinstance(g.get(k), h5py.Group):
                    walk(g[k])
        walk(f)
    return kinds


def pack_suite(store):
    tmp = T.tmpdir(f"archive-{store}")
    cfg = sslib.make_config(os.path.join(tmp, "c.yaml"), stages(), store=store)
    p = sslib.run(["run", cfg, "-q", "--threads", "2"])
    T.check(p.returncode == 0, f"{store}: the run to archive", sslib.describe(p))
    cont = sslib.container_path(os.path.join(tmp, "out"), "s1", store)
    arch = os.path.join(tmp, "s1-archive.h5")
    p = sslib.run(["pack", cont, "-o", arch])
    T.check(p.returncode == 0 and os.path.isfile(arch) and "chunks verified" in p.stdout,
            f"{store}: pack writes one file", sslib.describe(p))
    moved = os.path.join(T.tmpdir(f"archive-moved-{store}"), "elsewhere.h5")
    shutil.copyfile(arch, moved)
    T.check(links_of(moved) == {"HardLink"}, f"{store}: the archive holds no external link", str(links_of(moved)))
    eq, why = sslib.arrays_equal(archive_arrays(moved), sslib.read_arrays(cont, store))
    T.check(eq, f"{store}: moved elsewhere, h5py reads every array of the container from it", why)
    p = sslib.run(["inspect", moved])
    T.check(p.returncode == 0 and "/gauss  [filter_gaussian" in p.stdout, f"{store}: inspect reads the archive",
            sslib.describe(p))
    p = sslib.run(["verify", moved])
    T.check(p.returncode == 0 and "intact" in p.stdout, f"{store}: verify finds the archive intact", sslib.describe(p))
    with h5py.File(moved, "r", locking=False) as f:
        attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
        texts = {k: f[META][k][()].decode() for k in f[META]} if META in f else {}
        stage_cfg = f["gauss"].attrs.get("config")
        stage_cfg = stage_cfg.decode() if isinstance(stage_cfg, bytes) else stage_cfg
    cfg_text = open(cfg).read()
    T.check(attrs.get("sirenstack_packed") == 1 and attrs.get("sample") == "s1" and "software_version" in attrs
            and "hdf5" in str(attrs.get("libraries", "")) and "gauss" in str(attrs.get("stages", "")),
            f"{store}: the archive records the sample, versions and its stages", str(attrs)[:600])
    T.check(texts.get(f"config-{stage_cfg}.yaml") == cfg_text, f"{store}: the archive holds the config text "
            "each stage names", f"{list(texts)} vs config {stage_cfg}")
    return tmp, cfg, cont, arch


def damage_suite(tmp, arch, cont):
    bad = os.path.join(tmp, "damaged.h5")
    shutil.copyfile(arch, bad)
    with h5py.File(bad, "r", locking=False) as f:
        info = f["norm/data"].id.get_chunk_info(0)
    with open(bad, "r+b") as f:
        f.seek(info.byte_offset + info.size // 2)
        b = f.read(1)[0]
        f.seek(info.byte_offset + info.size // 2)
        f.write(bytes([b ^ 0x10]))
    before = sorted(os.listdir(tmp))
    p = sslib.run(["verify", bad])
    T.check(p.returncode == 3 and "'norm'" in p.stdout and "'data'" in p.stdout,
            "verify of an archive with a flipped byte: exit 3 naming the stage and array", sslib.describe(p))
    T.check(sorted(os.listdir(tmp)) == before, "verify writes nothing beside the archive",
            str(set(os.listdir(tmp)) ^ set(before)))
    # a damaged container is not packed
    d = os.path.join(tmp, "dmg")
    shutil.copytree(os.path.dirname(cont), d)
    dc = os.path.join(d, os.path.basename(cont))
    path = sslib.h5_stage_files(dc)["mean"]
    with h5py.File(path, "r", locking=False) as f:
        info = f["fused"].id.get_chunk_info(0)
    with open(path, "r+b") as f:
        f.seek(info.byte_offset + 20)
        b = f.read(1)[0]
        f.seek(info.byte_offset + 20)
        f.write(bytes([b ^ 0x01]))
    out = os.path.join(tmp, "never.h5")
    p = sslib.run(["pack", dc, "-o", out])
    T.check(p.returncode == 3 and "mean" in p.stderr and not os.path.exists(out) and
            not [x for x in os.listdir(tmp) if x.startswith("never.h5")],
            "pack of a damaged container: exit 3 naming the stage, no archive written", sslib.describe(p))


def reanalyse_suite(tmp, arch):
    before = sslib.sha256_file(arch)
    new = sslib.make_config(os.path.join(tmp, "new.yaml"), stages(sigma=1.5), output="new")
    p, ev, ran, reused = sslib.run_logged(new, tmp, extra=["--from", arch])
    T.check(p.returncode == 0 and sslib.stages_ran(ran) == {"gauss", "scores"} and
            sslib.stages_ran(reused) == {"raw", "norm", "mean", "median"},
            "run --from: the changed stage and its dependant run, the rest is reused from the archive",
            f"ran {sorted(sslib.stages_ran(ran))}, reused {sorted(sslib.stages_ran(reused))}\n" + sslib.describe(p))
    T.check(sslib.sha256_file(arch) == before and not os.path.exists(arch + ".d"),
            "the archive is byte-identical afterwards, nothing written beside it")
    newc = os.path.join(tmp, "new", "s1.h5")
    fresh = sslib.make_config(os.path.join(tmp, "fresh.yaml"), stages(sigma=1.5), output="fresh")
    p = sslib.run(["run", fresh, "-q", "--threads", "2"])
    fa = sslib.read_arrays(os.path.join(tmp, "fresh", "s1.h5"), "hdf5")
    na = sslib.read_arrays(newc, "hdf5")
    aa = archive_arrays(arch)
    mine = {k: v for k, v in fa.items() if k.split("/")[0] in ("gauss", "scores")}
    eq1, why1 = sslib.arrays_equal({k: na[k] for k in mine if k in na}, mine)
    old = {k: v for k, v in fa.items() if k not in mine}
    eq2, why2 = sslib.arrays_equal({k: aa[k] for k in old if k in aa}, old)
    T.check(p.returncode == 0 and eq1 and eq2 and set(na) == set(mine),
            "the new container holds the recomputed stages, equal to a fresh run's; the archive the rest",
            why1 + why2 + f"\nnew container: {sorted(na)}")
    attrs = sslib.stage_attrs(newc, "hdf5", "gauss")
    T.check(arch in str(attrs.get("inputs_from_archive", "")), "a stage that read the archive records it",
            str(attrs.get("inputs_from_archive")))
    p, ev, ran, reused = sslib.run_logged(new, tmp, extra=["--from", arch])
    T.check(p.returncode == 0 and not ran, "run --from again: nothing reruns", sslib.describe(p))
    p = sslib.run(["run", new, "--from", os.path.join(tmp, "out", "s1.h5")])
    T.check(p.returncode == 3 and "not a packed archive" in p.stderr, "--from a plain container: exit 3",
            sslib.describe(p))
    other = sslib.make_config(os.path.join(tmp, "other.yaml"), stages(), output="other",
                              samples=[{"id": "s2", "voxel_size": [1.0, 0.1, 0.1]}])
    p = sslib.run(["run", other, "--from", arch])
    T.check(p.returncode == 3 and "'s1' is not one of" in p.stderr, "--from an archive of another sample: exit 3",
            sslib.describe(p))


def cohort_suite():
    """Archives of every sample and of the cohort: a new config changing a
    per-sample stage that reads the cohort model reuses the model from the
    cohort's archive."""
    tmp = T.tmpdir("archive-cohort")
    samples = [{"id": f"m{i}", "repeats": 2} for i in range(3)]

    def cohort_stages(tile):
        st = {"raw": {"uses": "synth_smooth", "params": {"shape": [4, 40, 40], "repeats": 2}},
              "mean": {"uses": "fuse_mean", "inputs": {"repeats": "raw.repeats"}},
              "unet": {"uses": "denoise_train", "scope": "cohort", "inputs": {"input": "mean.fused", "target": "raw.truth"},
                       "params": {"depth": 2, "width": 8, "patch": 32, "batch": 4, "steps": 10}},
              "den": {"uses": "denoise_apply", "inputs": {"image": "mean.fused", "model": "unet.weights"},
                      "params": {"tile": tile}}}
        return st
    cfg = sslib.make_config(os.path.join(tmp, "c.yaml"), cohort_stages(64), samples=samples)
    p = sslib.run(["run", cfg, "-q", "--threads", "2"])
    archives = []
    for sid in ["m0", "m1", "m2", "_cohort"]:
        a = os.path.join(tmp, f"{sid}.archive.h5")
        q = sslib.run(["pack", os.path.join(tmp, "out", f"{sid}.h5"), "-o", a])
        archives += ["--from", a] if q.returncode == 0 else []
    T.check(p.returncode == 0 and len(archives) == 8, "cohort: every sample and the cohort container packed",
            sslib.describe(p))
    new = sslib.make_config(os.path.join(tmp, "new.yaml"), cohort_stages(24), samples=samples, output="new")
    p, ev, ran, reused = sslib.run_logged(new, tmp, extra=archives)
    T.check(p.returncode == 0 and ran == {(s["id"], "den") for s in samples} and ("_cohort", "unet") in reused,
            "cohort: only den reruns; the cohort model is read from the cohort's archive",
            f"ran {sorted(ran)}\n" + sslib.describe(p))
    fresh = sslib.make_config(os.path.join(tmp, "fresh.yaml"), cohort_stages(24), samples=samples, output="fresh")
    p = sslib.run(["run", fresh, "-q", "--threads", "2"])
    a = sslib.read_arrays(os.path.join(tmp, "new", "m1.h5"), "hdf5")
    b = sslib.read_arrays(os.path.join(tmp, "fresh", "m1.h5"), "hdf5")
    eq, why = sslib.arrays_equal({"den/denoised": a.get("den/denoised")}, {"den/denoised": b.get("den/denoised")}) \
        if "den/denoised" in a and "den/denoised" in b else (False, "missing")
    T.check(p.returncode == 0 and eq, "cohort: the result equals a fresh run's", why)


cohort_suite()
for store in ("hdf5", "zarr"):
    tmp, cfg, cont, arch = pack_suite(store)
    if store == "hdf5":
        damage_suite(tmp, arch, cont)
        reanalyse_suite(tmp, arch)
T.done()
