#!/usr/bin/python3
"""The invalid-config corpus: every file in tests/engine/configs/invalid/ must be
refused by `sirenstack validate` with exit status 2, a message that names the
place (file:line:col:) and what is wrong, no crash and no library noise, and
without writing anything.

Each corpus file starts with comment lines:
  # expect: TEXT     a substring of the error (repeatable: all must appear)
  # at: LINE:COL     where the error should point, in the config itself; or
  # at: PATH:LINE:COL  in another file (a manifest), PATH relative to the config;
                     LINE alone where the column is up to the YAML parser
  # errors: N        exactly N error lines (each problem reported once)
  # bug: WHY         a known validator bug: reported as TAP TODO until fixed
  # schema: reject   (check_schema.py) JSON Schema must refuse it too
The location and the expected text must be on the same line of stderr: one
line names the file, the place and the problem.

Inputs that cannot carry a comment (an empty file, binary garbage, very deep
nesting) are generated here at test time.
"""

import os
import random
import re
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cfglib  # noqa: E402

CORPUS = os.path.join(cfglib.SOURCE_ROOT, "tests", "engine", "configs", "invalid")
MAX_SECONDS = 5.0      # every refusal is quick; alias bombs and deep nesting included
MAX_LINE = 1000        # no line of stderr longer than this
EXIT_CONFIG = 2


def generated_cases(d):
    """(name, meta) of inputs written at test time into the scratch folder d."""
    cases = []

    def add(name, data, **meta):
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)
        cases.append((name, {k: v if isinstance(v, list) else [v] for k, v in meta.items()}))

    rng = random.Random(20240607)
    add("gen-empty-file.yaml", b"", expect="the config is empty")
    garbage = bytearray(rng.randrange(256) for _ in range(4096))
    garbage[100] = 0
    add("gen-binary-garbage-with-nul.yaml", bytes(garbage), expect="not a YAML text file")
    add("gen-binary-garbage-no-nul.yaml", bytes(rng.randrange(0x80, 0x100) for _ in range(4096)),
        expect="not a YAML text file")
    add("gen-nul-inside-value.yaml", b"version: 1\nrun:\n  name: a\x00b\n  output: out\n",
        expect="not a YAML text file")
    add("gen-latin1-text.yaml", "version: 1\nrun:\n  name: café\n  output: out\n".encode("latin-1"),
        expect="not a YAML text file")
    add("gen-png-header.yaml", b"\x89PNG\r\n\x1a\n" + bytes(rng.randrange(1, 256) for _ in range(512)),
        expect="not a YAML text file")
    deep = 100000
    add("gen-deep-100000-lists.yaml", b"version: 1\nrun: " + b"[" * deep + b"]" * deep + b"\n",
        expect="nesting deeper than 64 levels", at="2")
    add("gen-deep-100000-maps.yaml", b"version: 1\nrun: " + b"{a: " * deep + b"1" + b"}" * deep + b"\n",
        expect="nesting deeper than 64 levels", at="2")
    add("gen-deep-unclosed.yaml", b"version: 1\nrun: " + b"[" * deep + b"\n",
        expect="nesting deeper than 64 levels", at="2")
    # Many aliases of one big node: wide rather than deep.
    big = b"[" + b", ".join(b"x" for _ in range(1000)) + b"]"
    add("gen-alias-bomb-wide.yaml",
        b"version: 1\nbig: &b " + big + b"\nmany: [" + b", ".join(b"*b" for _ in range(5000)) + b"]\n",
        expect="aliases expand to more than a million nodes")
    # Many errors: listed up to a cap, then counted, never thousands of lines.
    add("gen-many-errors.yaml",
        b"version: 1\nrun: {name: t, output: out}\nsamples: [{id: a}]\nstages: {raw: {uses: synth_smooth}}\n"
        + b"".join(b"unknown%d: 1\n" % i for i in range(500)),
        expect=["unknown key", "more errors"], at="5:1", maxlines=60)
    os.mkdir(os.path.join(d, "gen-a-directory.yaml"))
    cases.append(("gen-a-directory.yaml", {"expect": ["cannot read the config"]}))
    cases.append(("gen-no-such-file.yaml", {"expect": ["cannot read the config", "No such file"]}))
    return cases


def location_regex(at, name):
    """at: 'LINE', 'LINE:COL', 'PATH:LINE:COL' or 'PATH:LINE'."""
    parts = at.split(":")
    if len(parts) == 1 and not parts[0].isdigit():
        # a whole-file problem (an empty manifest): the file, no position
        return re.compile(r"(?:^|[\s/])(?:\./)?" + re.escape(parts[0]) + ": ")
    if len(parts) >= 2 and not parts[0].isdigit():
        path, pos = parts[0], parts[1:]
    else:
        path, pos = name, parts
    if not all(p.isdigit() for p in pos) or not 1 <= len(pos) <= 2:
        raise ValueError(f"bad '# at: {at}'")
    loc = ":".join(pos) + (":" if len(pos) == 2 else r":\d+:")
    # The file as the program names it: as given, or joined to the config's folder (./x).
    return re.compile(r"(?:^|[\s/])(?:\./)?" + re.escape(path) + ":" + loc)


def check_case(tap, d, name, meta):
    diag = []
    todo = "; ".join(meta.get("bug", [])) or None
    expects = [e for e in meta.get("expect", []) if e]
    ats = meta.get("at", [])
    if not expects:
        tap.check(False, f"{name}: has a '# expect:' line", "every corpus file needs '# expect: TEXT'")
        return
    before = cfglib.tree_snapshot(d)
    r = cfglib.run_validate(name, d, timeout=30, trace=True)
    after = cfglib.tree_snapshot(d)
    ok = True

    def fail(msg):
        nonlocal ok
        ok = False
        diag.append(msg)

    if r.timed_out:
        fail(f"no answer after {r.seconds:.1f} s (hangs?)")
    elif r.rc != EXIT_CONFIG:
        fail(f"exit status {r.rc}, expected {EXIT_CONFIG}" + (" (killed by a signal)" if r.rc < 0 else ""))
    if r.seconds > MAX_SECONDS and not r.timed_out:
        fail(f"took {r.seconds:.1f} s, more than {MAX_SECONDS} s")
    if r.stdout.strip():
        fail("printed on stdout (errors go to stderr): " + r.stdout.strip()[:300])
    lines = r.stderr.splitlines()
    for what in cfglib.noise(r.stderr):
        fail(f"stderr holds {what}")
    maxlines = int(meta.get("maxlines", ["8"])[0])
    if len(lines) > maxlines:
        fail(f"{len(lines)} lines on stderr, at most {maxlines} expected")
    long_lines = [l for l in lines if len(l) > MAX_LINE]
    if long_lines:
        fail(f"a stderr line of {len(long_lines[0])} characters")
    if "errors" in meta:
        want = int(meta["errors"][0])
        got = sum(1 for l in lines if not l.startswith("error: "))
        if got != want:
            fail(f"{got} error lines, expected {want} (each problem once)")
    for e in expects:
        if e not in r.stderr:
            fail(f"stderr lacks: {e}")
    for at in ats:
        rx = location_regex(at, name)
        hits = [l for l in lines if rx.search(l)]
        if not hits:
            fail(f"no line points at {at} ({name}:{at}:)")
        elif not any(all(e in l for e in expects[:1]) for l in hits):
            fail(f"the line at {at} does not say '{expects[0]}'")
    changes = cfglib.snapshot_diff(before, after)
    if changes:
        fail("wrote to disk: " + ", ".join(changes[:5]))
    if r.mutations:
        fail("changed the file system: " + "; ".join(m[:200] for m in r.mutations[:3]))
    if not ok:
        diag.append("stderr was:")
        diag.extend("  " + l[:400] for l in lines[:12])
    tap.check(ok, name, "\n".join(diag), todo=cfglib.known_bug(todo))


def main():
    tap = cfglib.new_tap()
    if not os.path.isfile(cfglib.SIRENSTACK):
        print(f"1..0 # SKIP no sirenstack binary at {cfglib.SIRENSTACK}")
        return 0
    with tempfile.TemporaryDirectory(prefix="ss-invalid-") as tmp:
        d = os.path.join(tmp, "invalid")
        cfglib.copy_tree(CORPUS, d)
        names = sorted(n for n in os.listdir(d) if n.endswith(".yaml"))
        tap.check(len(names) >= 30, f"the corpus holds {len(names)} invalid configs (at least 30)")
        numbers = [n.split("-")[0] for n in names]
        dup = sorted({x for x in numbers if numbers.count(x) > 1})
        tap.check(not dup, "corpus file numbers are unique", f"duplicate numbers: {dup}")
        for n in names:
            check_case(tap, d, n, cfglib.header(os.path.join(d, n)))
        for n, meta in generated_cases(d):
            check_case(tap, d, n, meta)
    return tap.done(exit=False)


if __name__ == "__main__":
    sys.exit(main())
