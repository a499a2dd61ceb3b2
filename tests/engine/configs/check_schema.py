#!/usr/bin/python3
"""schemas/config.schema.json against the program and the configs.

1. The committed schema is what `sirenstack schema` prints (it is generated
   from the stage table, so it never drifts from the stages), and it names the
   same stage types and parameters as `sirenstack stages`.
2. It is a valid draft-07 JSON Schema, and every parameter default it states
   satisfies the parameter's own schema.
3. Every ready config (configs/*.yaml) and every example in
   tests/engine/configs/valid/ satisfies it (loaded with yaml.safe_load), and the C
   validator accepts each (exit 0) without writing anything or opening any
   input data file (traced with strace where present).
4. The invalid corpus files marked '# schema: reject' (what JSON Schema can
   express: unknown keys, wrong types, out-of-range values, unknown stage
   types, missing required keys) are refused by the schema too.
5. Small configs on which the schema and the validator must agree.

Regenerate the schema after changing a stage's parameters:
    build/sirenstack schema > schemas/config.schema.json
"""

import copy
import glob
import json
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cfglib  # noqa: E402

try:
    import jsonschema
    import yaml
except ImportError as e:  # run with Debian's /usr/bin/python3
    print(f"1..0 # SKIP {e} (needs python3-jsonschema and python3-yaml)")
    sys.exit(0)

ROOT = cfglib.SOURCE_ROOT
SCHEMA_FILE = os.path.join(ROOT, "schemas", "config.schema.json")
INVALID = os.path.join(ROOT, "tests", "engine", "configs", "invalid")
VALID = os.path.join(ROOT, "tests", "engine", "configs", "valid")
READY = os.path.join(ROOT, "configs")
DATA_SUFFIXES = (".h5", ".hdf5", ".he5", ".zarr", ".tif", ".tiff", ".npy")


def schema_errors(validator, doc):
    return sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))


def fmt_errors(errs, n=5):
    return [f"at /{'/'.join(str(p) for p in e.absolute_path)}: {e.message[:300]}" for e in errs[:n]]


def check_generated(tap):
    """Points 1: the committed file is the program's output."""
    p = subprocess.run([cfglib.SIRENSTACK, "schema"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        generated = json.loads(p.stdout)
    except ValueError as e:
        generated = None
        tap.check(False, "`sirenstack schema` prints JSON", "\n".join([str(e), p.stderr.decode()[:500]]))
    else:
        tap.check(p.returncode == 0, "`sirenstack schema` prints JSON and exits 0", f"exit status {p.returncode}")
    try:
        with open(SCHEMA_FILE, encoding="utf-8") as f:
            committed = json.load(f)
    except (OSError, ValueError) as e:
        tap.check(False, "schemas/config.schema.json is readable JSON", str(e))
        return None
    tap.check(True, "schemas/config.schema.json is readable JSON")
    same = generated is not None and committed == generated
    diag = []
    if not same and generated is not None:
        for line in diff_json(committed, generated)[:20]:
            diag.append(line)
        diag.append("regenerate: build/sirenstack schema > schemas/config.schema.json")
    tap.check(same, "schemas/config.schema.json equals the output of `sirenstack schema`", "\n".join(diag))

    # The stage types and parameters of `sirenstack stages`.
    p = subprocess.run([cfglib.SIRENSTACK, "stages"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    listed, cur = {}, None
    for line in p.stdout.decode("utf-8", "replace").splitlines():
        m = re.match(r"^(\S+) \(version \d+\)", line)
        if m:
            cur = listed.setdefault(m.group(1), set())
            continue
        m = re.match(r"^\s+param\s+(\S+)", line)
        if m and cur is not None:
            cur.add(m.group(1))
    in_schema = {}
    stage = committed.get("definitions", {}).get("stage", {})
    for case in stage.get("allOf", []):
        name = case["if"]["properties"]["uses"]["const"]
        in_schema[name] = set(params_of(case).get("properties", {}))
    enum = set(stage.get("properties", {}).get("uses", {}).get("enum", []))
    ok = listed and listed == in_schema and enum == set(listed)
    tap.check(bool(ok), f"the schema has the {len(listed)} stage types and their parameters of `sirenstack stages`",
              "\n".join([f"stages: {sorted((k, sorted(v)) for k, v in listed.items())}",
                         f"schema: {sorted((k, sorted(v)) for k, v in in_schema.items())}",
                         f"uses enum: {sorted(enum)}"]))
    return committed


def diff_json(a, b, path=""):
    if type(a) is not type(b):
        return [f"{path or '/'}: committed {json.dumps(a)[:80]} != generated {json.dumps(b)[:80]}"]
    if isinstance(a, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            if k not in a:
                out.append(f"{path}/{k}: only in the generated schema")
            elif k not in b:
                out.append(f"{path}/{k}: only in the committed file")
            else:
                out += diff_json(a[k], b[k], f"{path}/{k}")
        return out
    if isinstance(a, list):
        if len(a) != len(b):
            return [f"{path}: {len(a)} items committed, {len(b)} generated"]
        out = []
        for i, (x, y) in enumerate(zip(a, b)):
            out += diff_json(x, y, f"{path}/{i}")
        return out
    return [] if a == b else [f"{path}: committed {json.dumps(a)[:80]} != generated {json.dumps(b)[:80]}"]


def param_schemas(schema):
    """(where, subschema) for every parameter of the run section and of every stage type."""
    out = []
    run = schema["properties"]["run"]
    for k, s in run["properties"].items():
        if k == "checkpoint":
            out += [(f"run.checkpoint.{kk}", ss) for kk, ss in s["properties"].items()]
        else:
            out.append((f"run.{k}", s))
    for case in schema["definitions"]["stage"]["allOf"]:
        t = case["if"]["properties"]["uses"]["const"]
        for k, s in params_of(case).get("properties", {}).items():
            out.append((f"{t}.{k}", s))
    return out


def check_meta(tap, schema):
    """Points 2: a valid draft-07 schema whose defaults satisfy it."""
    try:
        jsonschema.Draft7Validator.check_schema(schema)
        tap.check(True, "the schema is a valid draft-07 JSON Schema")
    except jsonschema.SchemaError as e:
        tap.check(False, "the schema is a valid draft-07 JSON Schema", str(e)[:1500])
        return False
    tap.check(schema.get("$schema", "").startswith("http://json-schema.org/draft-07/schema"),
              "the schema declares draft-07 in $schema", f"$schema: {schema.get('$schema')}")
    bad = []
    for where, s in param_schemas(schema):
        if "default" not in s:
            continue
        sub = copy.deepcopy(s)
        sub.pop("default")
        errs = list(jsonschema.Draft7Validator(sub).iter_errors(s["default"]))
        if errs:
            bad.append(f"{where}: default {json.dumps(s['default'])}: {errs[0].message}")
    tap.check(not bad, "every default in the schema satisfies its parameter's schema", "\n".join(bad))
    # Every array parameter validates each of its items (draft-07 'items' as a
    # list checks only the first items by position).
    tuples = []

    def walk(node, path):
        if isinstance(node, dict):
            if node.get("type") == "array" and isinstance(node.get("items"), list):
                tuples.append(path or "/")
            for k, v in node.items():
                walk(v, f"{path}/{k}")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{path}/{i}")

    walk(schema, "")
    known = ["/properties/samples/oneOf/0/items/properties/voxel_size"]
    todo = None
    if tuples and tuples == known:
        todo = ("config_json_schema() packs samples[].voxel_size 'items' as a one-element list ('[{...}]'), "
                "so only the first number is checked: [1, -1, 1] passes the schema")
    tap.check(not tuples, "array items are checked one by one ('items' is a schema, not a tuple)",
              "\n".join(f"'items' is a list (checks only the first item) at {p}" for p in tuples),
              todo=cfglib.known_bug(todo))
    return True


def params_of(case):
    """The params schema of one stage-type case (an 'anyOf' with null when all
    parameters have defaults: an empty 'params:' is allowed then)."""
    p = case["then"]["properties"]["params"]
    for alt in p.get("anyOf", []):
        if alt.get("type") == "object":
            return alt
    return p


def ready_and_valid_configs():
    return sorted(glob.glob(os.path.join(READY, "*.yaml"))) + sorted(glob.glob(os.path.join(VALID, "*.yaml")))


def check_valid(tap, validator):
    """Points 3: the ready configs and the valid examples."""
    files = ready_and_valid_configs()
    n_valid = len(glob.glob(os.path.join(VALID, "*.yaml")))
    tap.check(n_valid >= 6, f"tests/engine/configs/valid holds {n_valid} example configs (at least 6)")
    for path in files:
        rel = os.path.relpath(path, ROOT)
        try:
            with open(path, encoding="utf-8-sig") as f:
                doc = yaml.safe_load(f)
        except yaml.YAMLError as e:
            tap.check(False, f"schema accepts {rel}", f"yaml.safe_load: {e}")
            continue
        errs = schema_errors(validator, doc)
        tap.check(not errs, f"schema accepts {rel}", "\n".join(fmt_errors(errs)))

    # The validator, in a scratch copy so that relative outputs land in it.
    with tempfile.TemporaryDirectory(prefix="ss-valid-") as tmp:
        root = os.path.join(tmp, "a", "b")  # configs/../out stays inside tmp
        os.makedirs(root)
        cfglib.copy_tree(READY, os.path.join(root, "configs"))
        cfglib.copy_tree(VALID, os.path.join(root, "valid"))
        for path in files:
            sub = "configs" if os.path.dirname(path) == READY else "valid"
            name = os.path.basename(path)
            rel = os.path.relpath(path, ROOT)
            cwd = os.path.join(root, sub)
            meta = cfglib.header(path)
            before = cfglib.tree_snapshot(tmp)
            r = cfglib.run_validate(name, cwd, timeout=60, trace=True)
            after = cfglib.tree_snapshot(tmp)
            diag = []
            if r.timed_out or r.rc != 0:
                diag.append(f"exit status {r.rc}" + (" (timed out)" if r.timed_out else ""))
            if not re.search(r": valid: \d+ samples?, \d+ stages?", r.stdout):
                diag.append("stdout lacks 'FILE: valid: N samples, M stages'")
            m = re.search(r"output (\S.*) \((hdf5|zarr)\)\s*$", r.stdout.strip())
            out = m and os.path.join(cwd, m.group(1))
            if out and os.path.exists(out):
                diag.append(f"the output folder {m.group(1)} exists after validate")
            changes = cfglib.snapshot_diff(before, after)
            if changes:
                diag.append("wrote to disk: " + ", ".join(changes[:5]))
            diag += [f"changed the file system: {x[:200]}" for x in r.mutations[:3]]
            # validate reads the config and its manifest, and no input data.
            manifests = set()
            try:
                with open(path, encoding="utf-8-sig") as f:
                    doc = yaml.safe_load(f)
                if isinstance(doc.get("samples"), dict):
                    manifests.add(os.path.normpath(os.path.join(cwd, doc["samples"]["manifest"])))
            except Exception:
                pass
            for opened, args, ret in r.opened:
                full = os.path.normpath(os.path.join(cwd, opened))
                inside = full.startswith(root + os.sep)
                if full == os.path.join(cwd, name) or full in manifests:
                    continue
                if inside or opened.endswith(DATA_SUFFIXES):
                    diag.append(f"opened {opened} (validate reads no input data)")
            if diag:
                diag += ["stdout: " + r.stdout.strip()[:300]] + ["stderr: " + l for l in r.stderr.splitlines()[:8]]
            tap.check(not diag, f"`sirenstack validate` accepts {rel}" + (" (traced)" if r.traced else ""),
                      "\n".join(diag))
    # The absolute output of one example must not appear either.
    tap.check(not os.path.exists("/tmp/sirenstack-never-created"),
              "validate created no absolute output folder (/tmp/sirenstack-never-created)")
    # And the inputs it names do not exist: validate needs no input data.
    missing = [p for p in ("does-not-exist/s1.h5", "/nonexistent/absolute/s2.h5")
               if not os.path.exists(os.path.join(VALID, p))]
    tap.check(len(missing) == 2, "valid/import-hdf5-dataset.yaml names input files that do not exist",
              "an input file of the example exists; it must not, to show validate reads no data")


def check_invalid(tap, validator):
    """Points 4: what JSON Schema can express, it refuses."""
    for path in sorted(glob.glob(os.path.join(INVALID, "*.yaml"))):
        meta = cfglib.header(path)
        if "reject" not in meta.get("schema", []):
            continue
        name = os.path.basename(path)
        todo = "; ".join(meta.get("schema-bug", [])) or None
        try:
            with open(path, encoding="utf-8") as f:
                doc = yaml.safe_load(f)
        except yaml.YAMLError as e:
            tap.check(False, f"schema rejects {name}", f"marked '# schema: reject' but PyYAML cannot load it: {e}")
            continue
        errs = schema_errors(validator, doc)
        tap.check(bool(errs), f"schema rejects {name}" + (f": {errs[0].message[:100]}" if errs else ""),
                  "the schema accepts it; the validator refuses it", todo=cfglib.known_bug(todo))


BASE = """version: 1
run: {name: t, output: out}
samples:
  - id: a
stages:
  raw: {uses: synth_smooth}
"""

# (description, YAML text, whether both must accept it, known bug or None)
AGREE = [
    ("a minimal config", BASE, True, None),
    ("params written as {} ", BASE.replace("{uses: synth_smooth}", "{uses: synth_smooth, params: {}}"), True, None),
    ("an id that looks like a number, quoted", BASE.replace("id: a", 'id: "0042"'), True, None),
    ("sample metadata that is a number", BASE.replace("id: a", "id: a\n    depth: 120.5"), True, None),
    ("sample metadata that is true/false", BASE.replace("id: a", "id: a\n    control: true"), True,
     None),
    ("params: with nothing after it (null)", BASE.replace("{uses: synth_smooth}", "\n    uses: synth_smooth\n    params:"),
     True, None),
    ("inputs: with nothing after it (null) on a source stage",
     BASE.replace("{uses: synth_smooth}", "\n    uses: synth_smooth\n    inputs:"), True,
     None),
    ("an unknown stage type", BASE.replace("synth_smooth", "synth_smoth"), False, None),
    ("a stage name with a dot", BASE.replace("  raw:", "  raw.v2:"), False, None),
    ("run.progress_interval 0 (must be above 0)", BASE.replace("output: out}", "output: out, progress_interval: 0}"),
     False, None),
    ("a voxel size with 0 as its last number", BASE.replace("id: a", "id: a\n    voxel_size: [1, 1, 0]"), False,
     None),
    ("repeats 0", BASE.replace("id: a", "id: a\n    repeats: 0"), False, None),
    ("a second input port on a one-input stage",
     BASE + "  mean: {uses: fuse_mean, inputs: {repeats: raw.repeats, extra: raw.truth}}\n", False, None),
]


def check_agreement(tap, validator):
    """Points 5: the schema and the validator give the same verdict."""
    with tempfile.TemporaryDirectory(prefix="ss-agree-") as tmp:
        for i, (desc, text, valid, bug) in enumerate(AGREE):
            name = f"agree-{i:02d}.yaml"
            with open(os.path.join(tmp, name), "w", encoding="utf-8") as f:
                f.write(text)
            r = cfglib.run_validate(name, tmp, timeout=30)
            errs = schema_errors(validator, yaml.safe_load(text))
            c_ok, s_ok = r.rc == 0, not errs
            ok = c_ok == valid and s_ok == valid
            diag = [f"expected both to {'accept' if valid else 'refuse'}",
                    f"validator: exit {r.rc}: " + (r.stderr.splitlines() or [r.stdout.strip()])[0][:300],
                    "schema: " + ("; ".join(fmt_errors(errs, 2)) if errs else "accepts")]
            tap.check(ok, f"schema and validator agree: {desc} ({'valid' if valid else 'invalid'})", "\n".join(diag),
                      todo=cfglib.known_bug(bug))


def main():
    tap = cfglib.new_tap()
    if not os.path.isfile(cfglib.SIRENSTACK):
        print(f"1..0 # SKIP no sirenstack binary at {cfglib.SIRENSTACK}")
        return 0
    schema = check_generated(tap)
    if schema is not None and check_meta(tap, schema):
        validator = jsonschema.Draft7Validator(schema)
        check_valid(tap, validator)
        check_invalid(tap, validator)
        check_agreement(tap, validator)
    return tap.done(exit=False)


if __name__ == "__main__":
    sys.exit(main())
