"""Counts TAP test points over meson's testlog.json and prints a summary whose
last line is 'N passed, N failed'. A test whose process failed (crash,
timeout, non-zero exit) without reporting a failed point counts as one failure;
skipped points are counted apart and never as passes."""
import json
import re
import sys

passed = failed = skipped = 0
lines = []
with open(sys.argv[1]) as f:
    for raw in f:
        t = json.loads(raw)
        out = t.get("stdout") or ""
        p = f_ = s = 0
        for line in out.splitlines():
            m = re.match(r"^(not ok|ok)\b(.*)$", line)
            if m:
                directive = m.group(2)
                if re.search(r"#\s*SKIP", directive, re.I):
                    s += 1
                elif m.group(1) == "ok":
                    p += 1
                elif re.search(r"#\s*TODO", directive, re.I):
                    s += 1
                else:
                    f_ += 1
            elif re.match(r"^1\.\.0\s*#\s*SKIP", line, re.I):
                s += 1
        result = t.get("result", "")
        if result not in ("OK", "SKIP", "EXPECTEDFAIL") and f_ == 0:
            f_ = 1
        passed += p
        failed += f_
        skipped += s
        lines.append(f"  {t['name']:<44} {result:<8} {p} passed, {f_} failed" + (f", {s} skipped" if s else ""))
print("tests:")
print("\n".join(lines))
if skipped:
    print(f"{skipped} skipped (not counted as passed)")
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
