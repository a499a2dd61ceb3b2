#!/usr/bin/python3
"""Damaged containers are noticed and repaired (schemas/container-layout.md, "Checksums"), in TAP.

A reference run commits raw -> norm -> {mean, median} -> scores (a table) and is copied for every
case; each case damages the copy, then:

  * `sirenstack verify` exits 3 with a line naming the container, the stage,
    the array and (for chunk damage) the chunk;
  * `status` says `damaged` for the stage, with the reason;
  * `run` recomputes exactly the damaged stage and its dependants (raw stays
    byte-identical), after which verify exits 0 and every array equals the
    reference.

Cases, on both stores unless said: five single-bit flips at random places
inside the compressed chunks of a stage (one flip per trial, HDF5 stage file
and Zarr chunk file; anywhere but blosc's flags byte), a deleted Zarr chunk, a damaged Zarr .zarray (garbage,
a wrong shape, a wrong dtype, a wrong compressor); reads that meet damage
(export, a stage reading a damaged input: exit 3 naming the chunk and plane;
the next run recomputes); SIRENSTACK_VERIFY=0; a stage committed before
checksums (verify: unverified, exit 0); a truncated or deleted HDF5 index
(rebuilt by run from the stage files, stages reused, values identical), and
two stage files of one stage (the newest commit wins); a damaged Zarr
order.json. SS_FLIP_SEED fixes the flip positions (default: random, printed).
"""
import json
import os
import shutil
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../lib"))

import numpy as np  # noqa: E402

import sslib  # noqa: E402
from sslib import h5py  # noqa: E402

T = sslib.Tap()
RNG = sslib.seeded_rng(T, "SS_FLIP_SEED", "flip positions")
ROOT = T.tmpdir("integrity")
ALL = {"raw", "norm", "mean", "median", "scores"}
# The one byte of a blosc chunk where a flipped bit may leave every decoded value as it
# was (a flag the decoder does not need): no damage to notice. A flip of any other bit of
# the 16-byte header changes the decoded values or stops the decoding.
BLOSC_FLAGS = 2
# a stage and those that read it, in sslib.synth_stages
DEPENDANTS = {"norm": {"norm", "mean", "median", "scores"}, "mean": {"mean", "scores"}, "raw": ALL}


def stages():
    """raw -> norm -> {mean, median} -> scores (a table)"""
    st = sslib.synth_stages()
    st["scores"] = {"uses": "metrics", "inputs": {"reference": "raw.truth", "methods": ["mean.fused", "median.fused"]}}
    return st


class Ref:
    """A committed reference container per store, copied for every case."""

    def __init__(self, store):
        self.store = store
        self.dir = os.path.join(ROOT, f"ref-{store}")
        os.makedirs(self.dir)
        self.cfg = sslib.make_config(os.path.join(self.dir, "c.yaml"), stages(), store=store)
        p = sslib.run(["run", self.cfg, "-q", "--threads", "2"])
        if p.returncode != 0:
            raise RuntimeError("reference run failed\n" + sslib.describe(p))
        self.cont = sslib.container_path(os.path.join(self.dir, "out"), "s1", store)
        self.arrays = sslib.read_arrays(self.cont, store)
        self.hashes = sslib.stage_hashes(self.cont, store)
        self.n = 0

    def copy(self, tag):
        self.n += 1
        d = os.path.join(ROOT, f"{self.store}-{self.n:02d}-{tag}")
        shutil.copytree(self.dir, d, symlinks=True)
        cfg = os.path.join(d, "c.yaml")
        return d, cfg, sslib.container_path(os.path.join(d, "out"), "s1", self.store)


def status_of(cfg):
    """stage -> (state, detail) from `status`."""
    p = sslib.run(["status", cfg])
    out = {}
    for line in p.stdout.splitlines()[1:]:
        parts = line.split(None, 3)
        if len(parts) >= 3:
            out[parts[1]] = (parts[2], parts[3] if len(parts) > 3 else "")
    return out


def chunk_files_hdf5(cont, stage, name):
    """(stage file, [(byte_offset, size), ...] of the chunks of stage/name)."""
    path = sslib.h5_stage_files(cont)[stage]
    with h5py.File(path, "r", locking=False) as f:
        d = f[name]
        return path, [(i.byte_offset, i.size) for i in (d.id.get_chunk_info(k) for k in range(d.id.get_num_chunks()))]


def chunk_files_zarr(cont, stage, name):
    """The chunk files of stage/name (an image: its level 0), as (path, [(0, size)])."""
    base = os.path.join(cont, stage, name, "0")
    if not os.path.isdir(base):
        base = os.path.join(cont, stage, name)
    out = []
    for r, _, files in os.walk(base):
        for fn in files:
            if not fn.startswith("."):
                out.append(os.path.join(r, fn))
    return sorted(out)


def chunk_values(path, off, size):
    """The decoded bytes of the blosc chunk at path[off:off + size], by
    numcodecs (an independent decoder), or None where it refuses them."""
    import numcodecs
    with open(path, "rb") as f:
        f.seek(off)
        raw = f.read(size)
    try:
        return bytes(numcodecs.Blosc().decode(raw))
    except Exception:  # noqa: BLE001 - any refusal means damage the reader must see
        return None


def flip_bit(path, offset):
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)[0]
        f.seek(offset)
        f.write(bytes([b ^ (1 << RNG.randrange(8))]))


def expect_repaired(ref, label, d, cfg, cont, damaged="norm", must=()):
    """verify 3 naming the damage, status damaged, run recomputes the stage
    and its dependants, then intact and equal to the reference."""
    p = sslib.run(["verify", cont])
    names = [cont, f"stage '{damaged}'"] + list(must)
    lines = [ln for ln in p.stdout.splitlines() if all(m in ln for m in names)]
    T.check(p.returncode == 3 and lines, f"{label}: verify exits 3 with a line naming the container, stage "
            f"{damaged}{', ' + ', '.join(must) if must else ''}", sslib.describe(p))
    st = status_of(cfg)
    T.check(st.get(damaged, ("?",))[0] == "damaged" and st[damaged][1], f"{label}: status says {damaged} is damaged, "
            "with the reason", str(st))
    T.check(all(st.get(s, ("?",))[0] == "done" for s in ALL - DEPENDANTS[damaged]),
            f"{label}: status: the stages above it are done", str(st))
    p, ev, ran, reused = sslib.run_logged(cfg, d)
    want = DEPENDANTS[damaged]
    T.check(p.returncode == 0 and sslib.stages_ran(ran) == want,
            f"{label}: run recomputes {damaged} and its dependants ({', '.join(sorted(want))}), nothing else",
            f"ran {sorted(sslib.stages_ran(ran))}\n" + sslib.describe(p))
    after = sslib.stage_hashes(cont, ref.store)
    T.check(all(after.get(s) == ref.hashes[s] for s in ALL - want), f"{label}: the other stages stay byte-identical")
    p = sslib.run(["verify", cont])
    T.check(p.returncode == 0 and "intact" in p.stdout, f"{label}: afterwards verify exits 0 (intact)",
            sslib.describe(p))
    eq, det = sslib.arrays_equal(sslib.read_arrays(cont, ref.store), ref.arrays)
    T.check(eq, f"{label}: afterwards every array equals the undamaged run", det)
    T.check(not sslib.leftovers(os.path.join(d, "out")), f"{label}: no temporaries left",
            "\n".join(sslib.leftovers(os.path.join(d, "out"))))


def bit_flips(ref):
    for trial in range(5):
        d, cfg, cont = ref.copy(f"flip{trial}")
        if ref.store == "hdf5":
            path, chunks = chunk_files_hdf5(cont, "norm", "data")
            off, size = RNG.choice(chunks)
        else:
            path = RNG.choice(chunk_files_zarr(cont, "norm", "data"))
            off, size = 0, os.path.getsize(path)
        at = off + RNG.choice([k for k in range(size) if k != BLOSC_FLAGS])
        before = chunk_values(path, off, size)
        flip_bit(path, at)
        label = f"{ref.store}: bit flip {trial + 1} of 5 (byte {at} of {os.path.relpath(path, cont)})"
        after = chunk_values(path, off, size)
        if after is not None and after == before:
            # LZ4 may decode a flipped match offset or length to the same bytes
            # (a copy from an identical run): the values are intact, and so is
            # the stage.
            p = sslib.run(["verify", cont])
            T.check(p.returncode == 0 and "intact" in p.stdout,
                    f"{label}: the flip decodes to the same values (numcodecs), and verify finds it intact",
                    sslib.describe(p))
            continue
        expect_repaired(ref, label, d, cfg, cont, must=["'data'", "chunk ("])


def zarr_deleted_chunk(ref):
    d, cfg, cont = ref.copy("deleted-chunk")
    victim = chunk_files_zarr(cont, "norm", "data")[2]
    os.unlink(victim)
    p = sslib.run(["export", cont, "norm/data", "-o", os.path.join(d, "x.npy")])
    T.check(p.returncode == 3 and "missing" in p.stderr and victim in p.stderr,
            "zarr: deleted chunk: export exits 3 naming the missing chunk file (not read as zeros)", sslib.describe(p))
    expect_repaired(ref, "zarr: deleted chunk", d, cfg, cont, must=["'data'", "chunk (", "missing"])


def zarr_damaged_zarray(ref):
    def garbage(j):
        return None

    def shape(j):
        j["shape"][0] = 4800000
        return j

    def dtype(j):
        j["dtype"] = "<i4"
        return j

    def compressor(j):
        j["compressor"] = {"id": "zlib", "level": 4}
        return j

    for what, change, word in (("garbage", garbage, "JSON"), ("a wrong shape", shape, "shape"),
                               ("a wrong dtype", dtype, "dtype"), ("a wrong compressor", compressor, "compressor")):
        d, cfg, cont = ref.copy("zarray")
        za = os.path.join(cont, "norm", "data", "0", ".zarray")
        with open(za) as f:
            j = json.load(f)
        j = change(j)
        with open(za, "w") as f:
            f.write('{"zarr_format": 2, "sha' if j is None else json.dumps(j))
        label = f"zarr: .zarray with {what}"
        p = sslib.run(["export", cont, "norm/data", "-o", os.path.join(d, "x.npy")])
        T.check(p.returncode == 3 and word in p.stderr and "norm" in p.stderr,
                f"{label}: export exits 3 naming it (nothing allocated by a bogus shape)", sslib.describe(p))
        expect_repaired(ref, label, d, cfg, cont, must=["'data'", word])


def damaged_reads(ref):
    """A stage whose input is damaged fails naming the chunk; the next run recomputes."""
    d, cfg, cont = ref.copy("read")
    if ref.store == "hdf5":
        path, chunks = chunk_files_hdf5(cont, "norm", "data")
        off, size = chunks[1]
    else:
        path = chunk_files_zarr(cont, "norm", "data")[1]
        off, size = 0, os.path.getsize(path)
    flip_bit(path, off + size // 2)
    out = os.path.join(d, "x.npy")
    p = sslib.run(["export", cont, "norm/data", "-o", out])
    refused = p.returncode == 3 and not os.path.exists(out)
    T.check(refused and cont in p.stderr and "stage 'norm'" in p.stderr and "'data'" in p.stderr
            and "chunk (1,0,0,0)" in p.stderr and "r 1" in p.stderr,
            f"{ref.store}: reading a damaged chunk: exit 3 naming container, stage, array, chunk and planes",
            sslib.describe(p))
    p = sslib.run(["export", cont, "norm/data", "-o", out], env={"SIRENSTACK_VERIFY": "0"})
    T.check(refused and p.returncode == 0 and os.path.exists(out),
            f"{ref.store}: SIRENSTACK_VERIFY=0 reads the chunk the default refuses, without checking it",
            sslib.describe(p))
    q = sslib.run(["run", cfg, "--force", "mean", "-q"], env={"SIRENSTACK_VERIFY": "0"})
    p = sslib.run(["run", cfg, "--force", "mean", "-q"])
    T.check(q.returncode == 0 and p.returncode == 3,
            f"{ref.store}: SIRENSTACK_VERIFY=0: a stage reads the damaged input the default refuses",
            sslib.describe(q) + "\n" + sslib.describe(p))
    T.check(p.returncode == 3 and "stage 'norm'" in p.stderr and "checksum mismatch" in p.stderr
            and "next run recomputes norm" in p.stderr,
            f"{ref.store}: a stage reading a damaged input fails with exit 3 naming it; the next run recomputes it",
            sslib.describe(p))
    st = status_of(cfg)
    T.check(st.get("norm", ("?",))[0] == "damaged", f"{ref.store}: status then says norm is damaged", str(st))
    p, ev, ran, _ = sslib.run_logged(cfg, d)
    T.check(p.returncode == 0 and sslib.stages_ran(ran) == DEPENDANTS["norm"],
            f"{ref.store}: the next run recomputes norm and what depends on it", f"ran {sorted(ran)}\n" + sslib.describe(p))
    eq, det = sslib.arrays_equal(sslib.read_arrays(cont, ref.store), ref.arrays)
    T.check(eq, f"{ref.store}: and every array equals the undamaged run", det)


def verify_json_and_unverified(ref):
    d, cfg, cont = ref.copy("json")
    p = sslib.run(["verify", "--json", cont])
    try:
        j = json.loads(p.stdout)
    except ValueError:
        j = {}
    T.check(p.returncode == 0 and j.get("intact") is True and j.get("stages") == {s: "intact" for s in ALL}
            and j.get("problems") == [] and j.get("chunks_checked", 0) >= 4,
            f"{ref.store}: verify --json of an intact container", sslib.describe(p))
    # a stage committed before checksums: no record, no checksums
    if ref.store == "zarr":
        za = os.path.join(cont, "mean", ".zattrs")
        with open(za) as f:
            a = json.load(f)
        del a["sirenstack_arrays"]
        with open(za, "w") as f:
            json.dump(a, f)
        os.unlink(os.path.join(cont, "mean", ".sirenstack_checksums.json"))
    else:
        path = sslib.h5_stage_files(cont)["mean"]
        with h5py.File(path, "r+", locking=False) as f:
            del f.attrs["sirenstack_arrays"]
            del f["fused"].attrs["sirenstack_checksums"]
    p = sslib.run(["verify", "--json", cont])
    try:
        j = json.loads(p.stdout)
    except ValueError:
        j = {}
    T.check(p.returncode == 0 and j.get("stages", {}).get("mean") == "unverified" and j.get("intact") is True
            and any("not verified" in n.get("message", "") for n in j.get("notes", [])),
            f"{ref.store}: a stage from before checksums is reported unverified (exit 0)", sslib.describe(p))
    p = sslib.run(["verify", cont])
    T.check(p.returncode == 0 and any(ln.startswith("note:") and "'mean'" in ln for ln in p.stdout.splitlines()),
            f"{ref.store}: verify prints it as a note", sslib.describe(p))
    p = sslib.run(["export", cont, "mean/fused", "-o", os.path.join(d, "m.npy")])
    T.check(p.returncode == 0, f"{ref.store}: and it is read without verification", sslib.describe(p))
    p, ev, ran, _ = sslib.run_logged(cfg, d)
    T.check(p.returncode == 0 and not ran, f"{ref.store}: and reused by run", f"ran {sorted(ran)}\n" + sslib.describe(p))


def hdf5_index(ref):
    for how in ("truncated", "deleted", "outside"):
        d, cfg, cont = ref.copy(f"index-{how}")
        if how == "truncated":
            os.truncate(cont, 1000)
        elif how == "deleted":
            os.unlink(cont)
        else:
            # a link to a file that is not the container's: a copy of the
            # stage file with other values, beside the container
            outside = os.path.join(d, "outside.h5")
            shutil.copy2(sslib.h5_stage_files(cont)["mean"], outside)
            with h5py.File(outside, "r+", locking=False) as f:
                f["fused"][...] = 7
            with h5py.File(cont, "r+", locking=False) as f:
                del f["mean"]
                f["mean"] = h5py.ExternalLink(outside, "/")
        p = sslib.run(["verify", cont])
        T.check(p.returncode == 3 and "index is" in p.stdout and "next run" in p.stdout
                and (how != "outside" or "not a stage file of this container" in p.stdout),
                f"hdf5: {how} index: verify exits 3 and says the next run rebuilds it", sslib.describe(p))
        st = status_of(cfg)
        T.check(all(st.get(s, ("?",))[0] == "done" for s in ALL), f"hdf5: {how} index: status shows the stages done",
                str(st))
        p, ev, ran, reused = sslib.run_logged(cfg, d)
        T.check(p.returncode == 0 and not ran and sslib.stages_ran(reused) == ALL,
                f"hdf5: {how} index: run rebuilds it and reuses every stage",
                f"ran {sorted(ran)}, reused {sorted(reused)}\n" + sslib.describe(p))
        T.check("warning:" in p.stderr and f"the index is {'missing' if how == 'deleted' else 'damaged'}" in p.stderr
                and "rebuilt it from the 5 committed stage files" in p.stderr
                and "raw, norm, mean, median, scores" in p.stderr,
                f"hdf5: {how} index: a warning names what was rebuilt", p.stderr)
        T.check(sslib.stage_hashes(cont, "hdf5") == ref.hashes, f"hdf5: {how} index: the stage files are untouched")
        eq, det = sslib.arrays_equal(sslib.read_arrays(cont, "hdf5"), ref.arrays)
        T.check(eq, f"hdf5: {how} index: values identical", det)
        order = []
        with h5py.File(cont, "r", locking=False) as f:
            f.id.links.iterate(lambda n: order.append(n.decode()), idx_type=h5py.h5.INDEX_CRT_ORDER)
        T.check(order == ["raw", "norm", "mean", "median", "scores"], f"hdf5: {how} index: links in commit order", order)
        p = sslib.run(["verify", cont])
        T.check(p.returncode == 0, f"hdf5: {how} index: verify exits 0 afterwards", sslib.describe(p))
    # two committed files of one stage (a recommit killed before its old file
    # went): the rebuilt index takes the newest commit
    d, cfg, cont = ref.copy("index-two")
    old = sslib.h5_stage_files(cont)["mean"]
    keep = os.path.join(d, "mean.keep")  # outside the stages folder, which recovery cleans
    shutil.copy2(old, keep)
    p = sslib.run(["run", cfg, "--force", "mean", "-q"])
    new = sslib.h5_stage_files(cont)["mean"]
    os.rename(keep, old)
    with open(cont, "wb") as f:
        f.write(b"\0" * 100)
    p2, ev, ran, _ = sslib.run_logged(cfg, d)
    T.check(p.returncode == 0 and p2.returncode == 0 and not ran and sslib.h5_stage_files(cont)["mean"] == new
            and not os.path.exists(old),
            "hdf5: two committed files of one stage: the rebuilt index names the newest, the older is removed",
            f"old {old}, new {new}, now {sslib.h5_stage_files(cont).get('mean')}\n" + sslib.describe(p2))


def zarr_order(ref):
    d, cfg, cont = ref.copy("order")
    order = os.path.join(cont, ".sirenstack", "order.json")
    with open(order, "w") as f:
        f.write("[\"raw\", ")
    p = sslib.run(["verify", cont])
    T.check(p.returncode == 3 and "order.json" in p.stdout, "zarr: damaged order.json: verify exits 3 naming it",
            sslib.describe(p))
    p, ev, ran, _ = sslib.run_logged(cfg, d)
    T.check(p.returncode == 0 and not ran and "order.json" in p.stderr and "rebuilt" in p.stderr,
            "zarr: damaged order.json: run rebuilds it with a warning, recomputes nothing", sslib.describe(p))
    with open(order) as f:
        T.check(json.load(f) == ["raw", "norm", "mean", "median", "scores"], "zarr: the rebuilt order is the commit order")
    p = sslib.run(["verify", cont])
    T.check(p.returncode == 0, "zarr: verify exits 0 afterwards", sslib.describe(p))


def xxh3_64():
    """XXH3-64 through libxxhash (what the layout specifies), without a Python package."""
    import ctypes
    lib = ctypes.CDLL("libxxhash.so.0")
    lib.XXH3_64bits.restype = ctypes.c_uint64
    lib.XXH3_64bits.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
    return lambda b: lib.XXH3_64bits(b, len(b))


def chunk_slices(shape, chunks):
    grid = [-(-n // c) for n, c in zip(shape, chunks)]
    for k in range(int(np.prod(grid))):
        idx, rest = [], k
        for g in reversed(grid):
            idx.append(rest % g)
            rest //= g
        yield tuple(slice(i * c, min(n, (i + 1) * c)) for i, c, n in zip(reversed(idx), chunks, shape))


def external_checksums(ref):
    """A reader without sirenstack recomputes every chunk's checksum from the
    values h5py or zarr-python give, as the layout specifies them (arrays, and
    the tables of scores as their records)."""
    h = xxh3_64()
    bad, n = [], 0
    if ref.store == "hdf5":
        with h5py.File(ref.cont, "r", locking=False) as f:
            for st in ALL:
                rec = json.loads(f[st].attrs["sirenstack_arrays"])
                for name, entry in rec.items():
                    d = f[st][name]
                    sums = [int(x) for x in d.attrs["sirenstack_checksums"]]
                    got = [h(d[sl].tobytes()) for sl in chunk_slices(d.shape, d.chunks)]
                    n += len(got)
                    if got != sums or list(d.shape) != entry["shape"] or list(d.chunks) != entry["chunks"]:
                        bad.append(f"{st}/{name}")
    else:
        import zarr
        for st in ALL:
            with open(os.path.join(ref.cont, st, ".sirenstack_checksums.json")) as fh:
                listed = json.load(fh)
            with open(os.path.join(ref.cont, st, ".zattrs")) as fh:
                rec = json.load(fh)["sirenstack_arrays"]
            for name, entry in rec.items():
                p = os.path.join(ref.cont, st, name)
                a = zarr.open_array(os.path.join(p, "0") if os.path.isdir(os.path.join(p, "0")) else p, mode="r")
                sums = [int(x, 16) if x else None for x in listed["arrays"][name]]
                got = [h(np.ascontiguousarray(a[sl]).tobytes()) for sl in chunk_slices(a.shape, a.chunks)]
                n += len(got)
                if got != sums or list(a.shape) != entry["shape"] or list(a.chunks) != entry["chunks"]:
                    bad.append(f"{st}/{name}")
        T.check(listed["algorithm"] == "xxh3-64", "zarr: the checksum file names its algorithm", listed)
    T.check(not bad and n >= 13, f"{ref.store}: libxxhash's XXH3-64 of each chunk's values, read by "
            f"{'h5py' if ref.store == 'hdf5' else 'zarr-python'}, is the stored checksum ({n} chunks)",
            f"differ: {bad}")


def help_text():
    p = sslib.run(["help", "verify"])
    T.check(p.returncode == 0 and "usage: sirenstack verify CONTAINER [--json]" in p.stdout,
            "help verify describes the command", sslib.describe(p))
    p = sslib.run(["verify"])
    T.check(p.returncode == 64, "verify without a container: usage error", sslib.describe(p))
    p = sslib.run(["verify", os.path.join(ROOT, "nothing.h5")])
    T.check(p.returncode == 3 and "no such container" in p.stderr, "verify of no container: exit 3",
            sslib.describe(p))


T.guard("help", help_text)
for store in ("hdf5", "zarr"):
    ref = T.guard(f"{store}: reference run", Ref, store)
    if ref is None:
        continue
    T.guard(f"{store}: checksums as an external reader computes them", external_checksums, ref)
    T.guard(f"{store}: bit flips", bit_flips, ref)
    T.guard(f"{store}: damaged reads", damaged_reads, ref)
    T.guard(f"{store}: verify --json, unverified stages", verify_json_and_unverified, ref)
    if store == "zarr":
        T.guard("zarr: deleted chunk", zarr_deleted_chunk, ref)
        T.guard("zarr: damaged .zarray", zarr_damaged_zarray, ref)
        T.guard("zarr: damaged order.json", zarr_order, ref)
    else:
        T.guard("hdf5: index", hdf5_index, ref)
T.done()
