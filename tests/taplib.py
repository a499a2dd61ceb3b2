"""TAP output for the Python tests: `T = Tap()`, then `T.check(cond, desc,
detail)` per test point, `T.skip(desc, why)` for points that cannot run here
(never counted as passes), `T.diag(text)`, and `T.done()` at the end, which
prints the plan, removes the temporary folders (unless KEEP_TMP is set) and
exits 1 if any point failed."""
import os
import shutil
import sys
import tempfile
import traceback


class Tap:
    def __init__(self):
        self.n = 0
        self.failed = 0
        self.tmpdirs = []

    def _detail(self, detail):
        if detail is None or detail == "":
            return
        for line in str(detail).splitlines():
            print(f"#   {line}")

    def check(self, cond, desc, detail=""):
        self.n += 1
        desc = desc.replace("#", "no.")
        if cond:
            print(f"ok {self.n} - {desc}")
        else:
            self.failed += 1
            print(f"not ok {self.n} - {desc}")
            self._detail(detail)
        sys.stdout.flush()
        return bool(cond)

    def skip(self, desc, why):
        self.n += 1
        print(f"ok {self.n} - {desc.replace('#', 'no.')} # SKIP {why}")
        sys.stdout.flush()

    def diag(self, text):
        for line in str(text).splitlines():
            print(f"# {line}")
        sys.stdout.flush()

    def guard(self, desc, fn, *a, **kw):
        """Runs fn; an exception becomes a failed point named desc."""
        try:
            return fn(*a, **kw)
        except Exception as e:  # noqa: BLE001 - any failure is reported as TAP
            self.check(False, desc, f"{type(e).__name__}: {e}\n{traceback.format_exc()}")
            return None

    def tmpdir(self, tag="ss"):
        d = tempfile.mkdtemp(prefix=f"ss-{tag}-")
        self.tmpdirs.append(d)
        return d

    def done(self):
        if not os.environ.get("KEEP_TMP"):
            for d in self.tmpdirs:
                # chmod'ed dirs of the bad-input cases must be writable to go
                for root, dirs, _ in os.walk(d):
                    for x in dirs:
                        try:
                            os.chmod(os.path.join(root, x), 0o755)
                        except OSError:
                            pass
                shutil.rmtree(d, ignore_errors=True)
        print(f"1..{self.n}")
        sys.stdout.flush()
        sys.exit(1 if self.failed else 0)
