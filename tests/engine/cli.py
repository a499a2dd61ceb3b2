#!/usr/bin/python3
"""The command line as a user meets it, in TAP.

--help of every subcommand (exit 0, a usage text on stdout) and `help
COMMAND` (the same text), --version (project version and git describe),
usage errors (exit 64, the closest command named), `stages NAME` and `stages
--json` (every type as data, agreeing with the JSON Schema), export to .npy
equal to what h5py / zarr-python read, export of a missing stage or array
(the names that exist), inspect --json (every stage, every array with its
shape), progress on a non-terminal stderr (plain lines with '%', the rate
with its unit and 'ETA', no carriage returns or escapes) and on a terminal (a
bar with the rate's unit), and the --log-json event stream (one JSON object
per line, run_start ... run_end, progress with its unit).
"""
import json
import os
import pty
import re
import select
import subprocess
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../lib"))

import numpy as np  # noqa: E402

import sslib  # noqa: E402

T = sslib.Tap()
COMMANDS = ["run", "validate", "status", "inspect", "export", "stages", "schema", "synth", "version"]
RATE = r"\d+\.\d\d[kMG]? (planes|steps|repeats)/s"


def help_and_usage():
    for cmd in COMMANDS:
        for flag in ("--help", "-h"):
            p = sslib.run([cmd, flag])
            T.check(p.returncode == 0 and p.stdout.lower().startswith("usage:") and cmd in p.stdout.splitlines()[0],
                    f"{cmd} {flag}: exit 0, prints 'usage: sirenstack {cmd} ...' on stdout",
                    f"exit {p.returncode}; first lines of stdout:\n" + "\n".join(p.stdout.splitlines()[:4]))
        want = sslib.run([cmd, "--help"])
        p = sslib.run(["help", cmd])
        T.check(p.returncode == 0 and p.stdout == want.stdout and p.stdout,
                f"help {cmd}: exit 0, the text of '{cmd} --help'", sslib.describe(p))
    for args in (["--help"], ["-h"], ["help"], ["help", "help"]):
        p = sslib.run(args)
        T.check(p.returncode == 0 and "usage:" in p.stdout and all(c in p.stdout for c in COMMANDS),
                f"sirenstack {' '.join(args)}: exit 0, lists every command", sslib.describe(p))
    with open(os.path.join(sslib.SOURCE_ROOT, "meson.build")) as f:
        version = re.search(r"version:\s*'([^']+)'", f.read()).group(1)
    for args in (["--version"], ["version"]):
        p = sslib.run(args)
        T.check(p.returncode == 0 and re.fullmatch(rf"sirenstack {re.escape(version)}( \(git [0-9a-zA-Z._-]+\))?\n",
                                                   p.stdout),
                f"sirenstack {args[0]}: exit 0, 'sirenstack {version} (git DESCRIBE)'", sslib.describe(p))
    p = sslib.run([])
    T.check(p.returncode == 64 and "usage:" in p.stderr, "no command: exit 64 with the usage on stderr",
            sslib.describe(p))
    p = sslib.run(["frobnicate"])
    T.check(p.returncode == 64 and "frobnicate" in p.stderr, "unknown command: exit 64, names it", sslib.describe(p))
    for args in (["rnu"], ["help", "rnu"]):
        p = sslib.run(args)
        T.check(p.returncode == 64 and len(p.stderr.splitlines()) == 1 and "'rnu'" in p.stderr
                and "did you mean 'run'" in p.stderr and not p.stdout,
                f"sirenstack {' '.join(args)}: exit 64, one line with did-you-mean 'run'", sslib.describe(p))
    p = sslib.run(["version", "extra"])
    T.check(p.returncode == 64, "version with an argument: exit 64", sslib.describe(p))
    for args, what in ((["run"], "run without a config"),
                       (["run", "a.yaml", "b.yaml"], "run with two configs"),
                       (["run", "--bogus", "a.yaml"], "run with an unknown option"),
                       (["run", "--threads", "x", "a.yaml"], "run --threads x"),
                       (["run", "--array-index", "-1", "a.yaml"], "run --array-index -1"),
                       (["run", "--device", "gpu9", "a.yaml"], "run --device gpu9"),
                       (["status"], "status without a config"),
                       (["status", "--force", "x", "a.yaml"], "status with a run-only option"),
                       (["validate"], "validate without a config"),
                       (["inspect"], "inspect without a container"),
                       (["inspect", "--bogus", "x.h5"], "inspect with an unknown option"),
                       (["export", "x.h5"], "export without STAGE/NAME and -o"),
                       (["export", "x.h5", "norm/data"], "export without -o"),
                       (["export", "x.h5", "nodata", "-o", "x.npy"], "export with a name that is not STAGE/NAME")):
        p = sslib.run(args)
        T.check(p.returncode == 64 and p.stderr.strip(), f"{what}: exit 64 with a message", sslib.describe(p))
    p = sslib.run(["run", "/nonexistent/config.yaml"])
    T.check(p.returncode == 2 and "/nonexistent/config.yaml" in p.stderr, "run with a missing config file: exit 2",
            sslib.describe(p))


def stage_types():
    p = sslib.run(["stages", "normalize"])
    out = p.stdout
    T.check(p.returncode == 0 and out.startswith("normalize (version ") and out.count("(version ") == 1
            and re.search(r"^\s+param\s+p_high\s+number in \[0, 100\], default 99\.9: ", out, re.M)
            and re.search(r"^\s+param\s+method\s+enum \(exact\|streaming\), default \"exact\"", out, re.M)
            and re.search(r"^\s+input\s+stack\s+image\|repeats: ", out, re.M)
            and re.search(r"^\s+output\s+data\s+image\|repeats \(as input stack\): ", out, re.M),
            "stages normalize: that type alone, parameters with type, range, default; ports with their kinds",
            sslib.describe(p))
    p = sslib.run(["stages", "metrics"])
    T.check(p.returncode == 0 and re.search(r"^\s+input\s+methods\s+image: .*\(one or more\) \(references of at most 63 characters\)$", p.stdout, re.M)
            and re.search(r"^\s+input\s+mask\s+mask: .*\(optional\)$", p.stdout, re.M)
            and re.search(r"^\s+output\s+summary\s+table: ", p.stdout, re.M),
            "stages metrics: optional and multiple inputs, and the longest reference, say so", sslib.describe(p))
    p = sslib.run(["stages", "normalise"])
    T.check(p.returncode == 2 and len(p.stderr.splitlines()) == 1 and "'normalise'" in p.stderr
            and "did you mean 'normalize'" in p.stderr and not p.stdout,
            "stages normalise: exit 2, one line with did-you-mean 'normalize'", sslib.describe(p))
    p = sslib.run(["stages", "--bogus"])
    T.check(p.returncode == 64, "stages --bogus: exit 64", sslib.describe(p))

    p = sslib.run(["stages", "--json"])
    try:
        types = json.loads(p.stdout)
    except ValueError:
        types = None
    if not T.check(p.returncode == 0 and isinstance(types, list) and types,
                   "stages --json: exit 0, a JSON list", sslib.describe(p)):
        return
    text = sslib.run(["stages"]).stdout
    listed = re.findall(r"^(\S+) \(version (\d+)\)", text, re.M)
    T.check([(t.get("name"), str(t.get("version"))) for t in types] == listed,
            f"stages --json: the {len(listed)} types of the text listing, in its order, with their versions",
            f"json {[t.get('name') for t in types]}\ntext {listed}")
    keys = {"name", "version", "doc", "stochastic", "source", "cohort", "params", "inputs", "outputs"}
    pkeys = {"name", "type", "default", "required", "nullable", "doc"}
    kinds = {"image", "repeats", "table", "weights", "mask"}
    bad = []
    for t in types:
        if set(t) != keys:
            bad.append(f"{t.get('name')}: keys {sorted(t)}")
            continue
        if t["cohort"] not in ("no", "allowed", "only"):
            bad.append(f"{t['name']}: cohort {t['cohort']!r}")
        for q in t["params"]:
            if not pkeys <= set(q) or (q["type"] == "enum") != ("choices" in q):
                bad.append(f"{t['name']}.{q.get('name')}: keys {sorted(q)}")
        for port in t["inputs"] + t["outputs"]:
            if not port.get("kinds") or not set(port["kinds"]) <= kinds:
                bad.append(f"{t['name']}.{port.get('name')}: kinds {port.get('kinds')}")
        for port in t["inputs"]:
            if set(port) != {"name", "kinds", "doc", "optional", "multiple"}:
                bad.append(f"{t['name']} input {port.get('name')}: keys {sorted(port)}")
        for port in t["outputs"]:
            if set(port) != {"name", "kinds", "doc", "like"}:
                bad.append(f"{t['name']} output {port.get('name')}: keys {sorted(port)}")
    T.check(not bad, "stages --json: every type, parameter and port has the documented keys", "\n".join(bad[:10]))
    by = {t["name"]: t for t in types}
    norm = {q["name"]: q for q in by.get("normalize", {}).get("params", [])}
    T.check(norm.get("p_high", {}).get("default") == 99.9 and norm["p_high"].get("type") == "number"
            and norm["p_high"].get("range") == {"min": 0, "max": 100, "min_exclusive": False, "max_exclusive": False}
            and norm.get("method", {}).get("choices") == ["exact", "streaming"]
            and by["normalize"]["outputs"][0].get("like") == "stack",
            "stages --json: normalize's p_high (number, default 99.9, range [0, 100]), method's choices, data like stack",
            json.dumps(by.get("normalize"))[:1500])
    interp = by.get("interp_linear", {})
    T.check([(q["name"], q["kinds"]) for q in interp.get("inputs", [])] == [("stack", ["image"])]
            and {q["name"]: q["required"] for q in by.get("import_hdf5", {}).get("params", [])}.get("file") is False,
            "stages --json: interp_linear takes an image; import_hdf5's file is not required",
            json.dumps(interp.get("inputs")))
    schema = json.loads(sslib.run(["schema"]).stdout)
    in_schema = {}
    for case in schema["definitions"]["stage"]["allOf"]:
        props = case["then"]["properties"]["params"]
        props = props.get("anyOf", [props])[0]
        in_schema[case["if"]["properties"]["uses"]["const"]] = sorted(props.get("properties", {}))
    from_json = {t["name"]: sorted(q["name"] for q in t["params"]) for t in types}
    T.check(from_json == in_schema, "stages --json: the types and parameters of the JSON Schema",
            f"json {from_json}\nschema {in_schema}")
    p = sslib.run(["stages", "--json", "crop", "metrics"])
    T.check(p.returncode == 0 and [t["name"] for t in json.loads(p.stdout)] == ["crop", "metrics"],
            "stages --json crop metrics: a list of those two", sslib.describe(p))


def export_and_inspect(store):
    tmp = T.tmpdir(f"cli-{store}")
    cfg = sslib.make_config(os.path.join(tmp, "c.yaml"), sslib.synth_stages(), store=store)
    p = sslib.run(["run", cfg, "-q", "--threads", "2"])
    if not T.check(p.returncode == 0, f"{store}: run completes", sslib.describe(p)):
        return
    cont = sslib.container_path(os.path.join(tmp, "out"), "s1", store)
    arrays = sslib.read_arrays(cont, store)
    for name in ("norm/data", "raw/repeats", "mean/fused"):
        dst = os.path.join(tmp, name.replace("/", "_") + ".npy")
        p = sslib.run(["export", cont, name, "-o", dst])
        ok = T.check(p.returncode == 0 and os.path.exists(dst), f"{store}: export {name} -o .npy: exit 0",
                     sslib.describe(p))
        if ok:
            a = np.load(dst)
            T.check(a.dtype == arrays[name].dtype and a.shape == arrays[name].shape and np.array_equal(a, arrays[name]),
                    f"{store}: exported {name} equals the {'h5py' if store == 'hdf5' else 'zarr'}-read array "
                    f"({a.dtype}{a.shape})", f"npy {a.dtype}{a.shape} vs {arrays[name].dtype}{arrays[name].shape}")
    bad = os.path.join(tmp, "missing.npy")
    p = sslib.run(["export", cont, "norm/nosuch", "-o", bad])
    T.check(p.returncode == 3 and "no array 'nosuch' in stage 'norm'; it has: data" in p.stderr
            and not os.path.exists(bad),
            f"{store}: export of a missing array: exit 3, names it and the stage's arrays, writes nothing",
            sslib.describe(p))
    p = sslib.run(["export", cont, "mean/fuesd", "-o", bad])
    T.check(p.returncode == 3 and len(p.stderr.splitlines()) == 1
            and "no array 'fuesd' in stage 'mean'; it has: fused (did you mean 'fused'?)" in p.stderr,
            f"{store}: export of a misspelt array: exit 3, one line with did-you-mean", sslib.describe(p))
    p = sslib.run(["export", cont, "nostage/data", "-o", bad])
    T.check(p.returncode == 3 and "no stage 'nostage'; the container has: raw, norm, mean, median" in p.stderr
            and not os.path.exists(bad),
            f"{store}: export of a missing stage: exit 3, names it and the container's stages, writes nothing",
            sslib.describe(p))
    p = sslib.run(["export", cont, "maen/fused", "-o", bad])
    T.check(p.returncode == 3 and "did you mean 'mean'?" in p.stderr,
            f"{store}: export of a misspelt stage: did-you-mean", sslib.describe(p))
    p = sslib.run(["export", cont, "norm/data", "-o", os.path.join(tmp, "x.csv")])
    T.check(p.returncode not in (0, 64) and p.returncode >= 0 and p.stderr.startswith("error:")
            and not os.path.exists(os.path.join(tmp, "x.csv")),
            f"{store}: export of an array to .csv is refused with an error", sslib.describe(p))
    T.check(not [f for f in os.listdir(tmp) if ".tmp" in f], f"{store}: failed exports leave no temporaries",
            str(os.listdir(tmp)))

    p, js = sslib.inspect_json(cont)
    if not T.check(isinstance(js, dict), f"{store}: inspect --json parses as a JSON object", sslib.describe(p)):
        return
    T.check(set(js) == {"raw", "norm", "mean", "median"}, f"{store}: inspect --json lists all four stages",
            str(sorted(js)))
    bad = []
    for k, a in arrays.items():
        s, n = k.split("/")
        info = js.get(s, {}).get("arrays", {}).get(n)
        if not info or list(info.get("shape", [])) != list(a.shape) or info.get("dtype") != str(a.dtype):
            bad.append(f"{k}: inspect {info and (info.get('dtype'), info.get('shape'))} vs reader {a.dtype}{a.shape}")
    listed = {f"{s}/{n}" for s, v in js.items() for n in v.get("arrays", {})}
    T.check(not bad and listed == set(arrays), f"{store}: inspect --json shapes and dtypes match the reader's",
            "\n".join(bad) + f"\nlisted {sorted(listed)} read {sorted(arrays)}")
    stage_types = {s: v.get("stage_type") for s, v in js.items()}
    T.check(stage_types == {"raw": "synth_smooth", "norm": "normalize", "mean": "fuse_mean", "median": "fuse_median"},
            f"{store}: inspect --json gives each stage's type", str(stage_types))
    params = js.get("norm", {}).get("params")
    T.check(isinstance(params, dict) and params.get("p_high") == 99.9,
            f"{store}: inspect --json gives the parameters as an object", f"params: {params!r}")
    fps = {s: v.get("fingerprint") for s, v in js.items()}
    T.check(all(isinstance(f, str) and re.fullmatch(r"[0-9a-f]{32}", f) for f in fps.values())
            and js["mean"].get("input_fingerprints", {}).get("repeats") == fps["norm"],
            f"{store}: fingerprints are 32 hex digits; mean's input fingerprint is norm's", str(fps))
    p = sslib.run(["inspect", cont])
    T.check(p.returncode == 0 and all(f"/{s}" in p.stdout for s in js) and "4x6x48x40" in p.stdout,
            f"{store}: inspect (text) lists the stages and shapes", sslib.describe(p))
    # the stage's own results (normalize: the percentile values it found), as --json has them
    norm = js.get("norm", {})
    want = f"results  n_values {norm.get('n_values')}, p_high_value {norm.get('p_high_value'):.6g}, " \
        f"p_low_value {norm.get('p_low_value'):.6g}" if "p_high_value" in norm else None
    T.check(want is not None and want in p.stdout, f"{store}: inspect (text) shows a stage's own results",
            f"expected {want!r} in\n{p.stdout}")
    p = sslib.run(["inspect", os.path.join(tmp, "nosuch.h5")])
    T.check(p.returncode == 3 and "nosuch.h5" in p.stderr, f"{store}: inspect of a missing container: exit 3",
            sslib.describe(p))


def progress_and_log():
    tmp = T.tmpdir("cli-progress")
    cfg = sslib.make_config(os.path.join(tmp, "c.yaml"), sslib.synth_stages(shape=(96, 256, 256), fuse=False),
                            run_extra={"progress_interval": 0.5})
    log = os.path.join(tmp, "log.jsonl")
    t0 = time.monotonic()
    env = dict(os.environ)
    env.pop("SIRENSTACK_CRASHPOINT", None)
    proc = subprocess.Popen([sslib.BIN, "run", cfg, "--threads", "2", "--log-json", log], env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # status while the run holds the container: the running stage, with the pid
    running_seen = None
    status_dir = os.path.join(tmp, "out", "s1.h5.d", "status")
    while proc.poll() is None and time.monotonic() - t0 < 60:
        if os.path.isdir(status_dir) and any(f.endswith(".running") for f in os.listdir(status_dir)):
            st = sslib.run(["status", cfg])
            running_seen = [ln for ln in st.stdout.splitlines() if " running " in ln]
            break
        time.sleep(0.05)
    out, err = proc.communicate(timeout=300)
    p = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    secs = time.monotonic() - t0
    if running_seen is None:
        T.skip("status during the run shows the running stage with its pid", "the run ended before status could look")
    else:
        T.check(len(running_seen) == 1 and f"pid {proc.pid}" in running_seen[0],
                "status during the run shows the running stage with its pid", "\n".join(running_seen))
    if not T.check(p.returncode == 0, f"large run completes ({secs:.1f} s)", sslib.describe(p)):
        return
    ev = sslib.read_events(log)
    durations = {e["stage"]: e.get("seconds", 0) for e in ev if e.get("event") == "stage_end"}
    T.diag(f"stage durations: {durations}")
    T.check("\r" not in p.stderr and "\033" not in p.stderr, "non-terminal stderr has no carriage returns or escapes",
            repr(p.stderr[:500]))
    prog = [ln for ln in p.stderr.splitlines() if re.search(r"\d+%", ln) and "ETA" in ln]
    if max(durations.values() or [0]) > 1.2:
        T.check(len(prog) >= 1, f"plain progress lines with '%' and 'ETA' ({len(prog)} lines)", p.stderr[-2000:])
        T.check(all(re.match(r"^s1/\w+: \d+% ", ln) for ln in prog),
                "each progress line starts with sample/stage and the percentage", "\n".join(prog[:5]))
        T.check(all(re.search(r"\(\d+/\d+ planes\) " + RATE + ", elapsed ", ln) for ln in prog),
                "each progress line gives the rate with its unit (planes/s)", "\n".join(prog[:5]))
    else:
        T.skip("plain progress lines with '%' and 'ETA'", f"no stage took more than 1.2 s here ({durations})")
        T.skip("each progress line starts with sample/stage and the percentage", "no stage took more than 1.2 s")
        T.skip("each progress line gives the rate with its unit (planes/s)", "no stage took more than 1.2 s")
    # --log-json: one object per line
    with open(log) as f:
        raw_lines = [ln for ln in f.read().split("\n") if ln]
    parsed, bad = [], []
    for ln in raw_lines:
        try:
            o = json.loads(ln)
            parsed.append(o) if isinstance(o, dict) else bad.append(ln)
        except ValueError:
            bad.append(ln)
    T.check(not bad and parsed, f"--log-json: every line is one JSON object ({len(parsed)} lines)", "\n".join(bad[:5]))
    T.check(all("event" in o and "time" in o for o in parsed), "--log-json: every object has 'event' and 'time'")
    kinds = [o.get("event") for o in parsed]
    T.check(kinds[:1] == ["run_start"], "--log-json: the first event is run_start", str(kinds[:3]))
    T.check(kinds[-1:] == ["run_end"], "--log-json: the last event is run_end", str(kinds[-3:]))
    end = [o for o in parsed if o.get("event") == "run_end"]
    T.check(len(end) == 1 and end[0].get("status") == "ok" and end[0].get("exit") == 0,
            "--log-json: run_end reports status ok, exit 0", str(end))
    T.check("progress" in kinds if max(durations.values() or [0]) > 1 else True,
            "--log-json: progress events during the long stage", str(sorted(set(kinds))))
    progress = [o for o in parsed if o.get("event") == "progress"]
    T.check(all(o.get("unit") == "planes" and {"label", "done", "total", "rate", "eta_seconds"} <= set(o)
                for o in progress),
            f"--log-json: progress events carry unit 'planes' beside label, done, total, rate, eta_seconds "
            f"({len(progress)} events)", str(progress[:3]))
    starts = [o["stage"] for o in parsed if o.get("event") == "stage_start"]
    ends = [o["stage"] for o in parsed if o.get("event") == "stage_end" and o.get("status") == "done"]
    T.check(starts == ["raw", "norm"] and ends == ["raw", "norm"], "--log-json: stage_start/stage_end per stage",
            f"{starts} {ends}")
    # a second run appends to the same log
    p = sslib.run(["run", cfg, "-q", "--log-json", log])
    ev2 = sslib.read_events(log)
    T.check(p.returncode == 0 and len(ev2) > len(parsed) and [e["event"] for e in ev2].count("run_start") == 2,
            "--log-json appends: a second run adds its own run_start", sslib.describe(p))
    T.check(sum(1 for e in ev2[len(parsed):] if e.get("event") == "stage_reuse") == 2,
            "second run: two stage_reuse events")
    # a failing run still ends its log with run_end carrying the exit status
    flog = os.path.join(tmp, "fail.jsonl")
    bad_cfg = sslib.make_config(os.path.join(tmp, "bad.yaml"),
                                sslib.import_stages(file=os.path.join(tmp, "nope.h5")), output="out_bad")
    p = sslib.run(["run", bad_cfg, "-q", "--log-json", flog])
    fev = sslib.read_events(flog)
    T.check(p.returncode == 3 and fev and fev[-1].get("event") == "run_end" and fev[-1].get("exit") == 3,
            "failing run: exit 3, the log ends with run_end exit 3", f"{[e.get('event') for e in fev]}\n{sslib.describe(p)}")
    p = sslib.run(["run", cfg, "-q", "--log-json", os.path.join(tmp, "nodir", "x.jsonl")])
    T.check(p.returncode == 4 and "x.jsonl" in p.stderr, "--log-json into a missing folder: exit 4 naming the file",
            sslib.describe(p))
    # --quiet: nothing on stderr for a successful run
    cfg2 = sslib.make_config(os.path.join(tmp, "small.yaml"), sslib.synth_stages(), output="out_small")
    p = sslib.run(["run", cfg2, "--quiet"])
    T.check(p.returncode == 0 and p.stderr == "" and p.stdout == "", "--quiet: a successful run prints nothing",
            sslib.describe(p))
    p = sslib.run(["validate", cfg2])
    T.check(p.returncode == 0, "validate of a good config: exit 0", sslib.describe(p))


def progress_on_terminal():
    """stderr on a pseudo-terminal: the bar, with the rate and its unit."""
    tmp = T.tmpdir("cli-tty")
    cfg = sslib.make_config(os.path.join(tmp, "c.yaml"), sslib.synth_stages(shape=(64, 256, 256), fuse=False))
    master, slave = pty.openpty()
    env = dict(os.environ)
    env.pop("SIRENSTACK_CRASHPOINT", None)
    proc = subprocess.Popen([sslib.BIN, "run", cfg, "--threads", "2"], env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=slave)
    os.close(slave)
    chunks = []
    while True:
        r, _, _ = select.select([master], [], [], 120)
        try:
            data = os.read(master, 65536) if r else b""
        except OSError:  # the child closed the terminal
            data = b""
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=120)
    os.close(master)
    out = b"".join(chunks).decode("utf-8", "replace")
    bars = [b for b in out.split("\r") if "[" in b and "%" in b]
    T.check(proc.returncode == 0 and bars and all(re.search(r"\] +\d+% \S+ " + RATE + " ETA ", b) for b in bars),
            f"terminal: the progress bar gives the rate with its unit ({len(bars)} bars drawn)", repr(out[-800:]))


T.guard("help and usage", help_and_usage)
T.guard("stage types", stage_types)
for store in ("hdf5", "zarr"):
    T.guard(f"{store}: export and inspect", export_and_inspect, store)
T.guard("progress and log", progress_and_log)
T.guard("progress on a terminal", progress_on_terminal)
T.done()
