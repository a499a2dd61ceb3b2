"""Shared by the config-format tests: TAP output (the shared taplib.Tap),
running `sirenstack validate` in a scratch folder, and watching that it writes
nothing and reads no input data. Run with Debian's /usr/bin/python3."""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

SIRENSTACK = os.environ.get("SIRENSTACK")
HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_ROOT = os.environ.get("SOURCE_ROOT") or os.path.normpath(os.path.join(HERE, "..", "..", ".."))
if not SIRENSTACK:
    SIRENSTACK = os.path.join(SOURCE_ROOT, "build", "sirenstack")
SIRENSTACK = os.path.abspath(SIRENSTACK)
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../lib"))
from taplib import Tap  # noqa: E402 - the shared TAP writer

STRACE = shutil.which("strace") if os.environ.get("SS_TEST_NO_STRACE") != "1" else None


def new_tap():
    """The shared TAP writer; '#' in a description is written as the TAP
    escape '\\#' (a corpus file name or a schema message may hold one)."""
    return Tap(hash_as="\\#")


def known_bug(why):
    """The TODO reason of a point for a known bug (None when there is none):
    `tap.check(ok, desc, detail, todo=known_bug(why))`."""
    return f"known bug: {why}" if why else None


def header(path):
    """The leading comment block of a corpus file: '# key: value' lines, as
    {key: [values]}. Stops at the first line that is not a comment."""
    meta = {}
    try:
        with open(path, "rb") as f:
            for raw in f:
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                if not line.startswith("#"):
                    break
                m = re.match(r"#\s*([a-z][a-z-]*):\s?(.*)$", line)
                if m:
                    meta.setdefault(m.group(1), []).append(m.group(2).strip())
    except OSError:
        pass
    return meta


def tree_snapshot(root):
    """Every path under root with its size and mtime: compared before and
    after a command to see that it wrote nothing."""
    snap = {}
    for d, dirs, files in os.walk(root):
        for name in dirs + files:
            p = os.path.join(d, name)
            try:
                st = os.lstat(p)
            except OSError:
                continue
            snap[os.path.relpath(p, root)] = (st.st_size, st.st_mtime_ns)
    return snap


def snapshot_diff(before, after):
    out = []
    for p in sorted(set(before) | set(after)):
        if p not in before:
            out.append(f"created {p}")
        elif p not in after:
            out.append(f"removed {p}")
        elif before[p] != after[p]:
            out.append(f"changed {p}")
    return out


WRITE_FLAGS = ("O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC", "O_APPEND")
MUTATING = ("mkdir", "mkdirat", "rename", "renameat", "renameat2", "unlink", "unlinkat", "rmdir", "creat",
            "link", "linkat", "symlink", "symlinkat", "truncate", "ftruncate")


class Result:
    def __init__(self):
        self.rc = None
        self.stdout = ""
        self.stderr = ""
        self.seconds = 0.0
        self.timed_out = False
        self.opened = []     # (path, flags) of every open, when traced
        self.mutations = []  # syscalls that change the file system, when traced
        self.traced = False


def run_validate(path, cwd, timeout=20, trace=False):
    """Runs `sirenstack validate path` in cwd. With trace (and strace found),
    records every file the process opened and every call that changes the file
    system."""
    r = Result()
    cmd = [SIRENSTACK, "validate", path]
    log = None
    env = None
    if trace and STRACE:
        fd, log = tempfile.mkstemp(prefix="ss-strace-", suffix=".log")
        os.close(fd)
        cmd = [STRACE, "-f", "-qq", "-o", log, "-e",
               "trace=open,openat,creat," + ",".join(m for m in MUTATING if m != "creat")] + cmd
        # LeakSanitizer (a sanitizer build) cannot work under ptrace; the
        # test fuzz-config loads every config of tests/engine/configs untraced, and
        # looks for leaks there.
        if "ASAN_OPTIONS" in os.environ:
            env = dict(os.environ, ASAN_OPTIONS=os.environ["ASAN_OPTIONS"] + ":detect_leaks=0")
    t0 = time.monotonic()
    try:
        p = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
        r.rc = p.returncode
        r.stdout = p.stdout.decode("utf-8", "replace")
        r.stderr = p.stderr.decode("utf-8", "replace")
    except subprocess.TimeoutExpired as e:
        r.timed_out = True
        r.stdout = (e.stdout or b"").decode("utf-8", "replace")
        r.stderr = (e.stderr or b"").decode("utf-8", "replace")
    r.seconds = time.monotonic() - t0
    if log:
        r.traced = True
        with open(log, encoding="utf-8", errors="replace") as f:
            text = f.read()
        os.unlink(log)
        if r.rc is not None and re.search(r"PTRACE|Operation not permitted", r.stderr) and not text.strip():
            # strace could not attach (a restricted container): run untraced.
            return run_validate(path, cwd, timeout, trace=False)
        for line in text.splitlines():
            m = re.match(r"\d+\s+(\w+)\((.*)\)\s+=\s+(-?\d+|\?)", line)
            if not m:
                continue
            call, args, ret = m.groups()
            pm = re.search(r'"((?:[^"\\]|\\.)*)"', args)
            fpath = pm.group(1) if pm else ""
            if call in ("open", "openat"):
                r.opened.append((fpath, args, ret))
                if any(f in args for f in WRITE_FLAGS):
                    r.mutations.append(line)
            elif call in MUTATING:
                r.mutations.append(line)
    return r


FORBIDDEN = [
    (re.compile(r"HDF5-DIAG|H5[A-Z]\w*\(\)"), "HDF5 diagnostics"),
    (re.compile(r"Segmentation fault|core dumped|Aborted"), "a crash"),
    (re.compile(r"AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|runtime error:"), "a sanitizer report"),
    (re.compile(r"Traceback \(most recent call last\)"), "a Python traceback"),
    (re.compile(r"^\s*#\d+ 0x[0-9a-f]+", re.M), "a stack trace"),
    (re.compile(r"Assertion .* failed"), "an assertion"),
]


def noise(stderr):
    return [what for rx, what in FORBIDDEN if rx.search(stderr)]


def copy_tree(src, dst):
    shutil.copytree(src, dst, symlinks=True)
