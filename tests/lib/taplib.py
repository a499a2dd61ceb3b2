"""TAP output for the Python tests: `T = Tap()`, then `T.check(cond, desc,
detail)` per test point, `T.skip(desc, why)` for points that cannot run here
(never counted as passes), `T.diag(text)`, and `T.done()` at the end, which
prints the plan, removes the temporary folders (unless KEEP_TMP is set) and
exits 1 if any point failed.

Options, all off by default:
  `T.check(..., todo=WHY)` marks a point of a known bug (TAP TODO): its detail
    is shown either way, and a failure does not fail the run.
  `Tap(hash_as="\\#")` writes '#' in descriptions as the TAP escape instead of
    "no.".
  `Tap(max_detail_lines=N)` shows at most N lines of a failure's detail.
  `T.done(exit=False)` returns the exit status (1 if any point failed, else 0)
    instead of calling sys.exit, for drivers that clean up after the plan."""
import os
import shutil
import sys
import tempfile
import traceback


class Tap:
    def __init__(self, hash_as="no.", max_detail_lines=None):
        self.n = 0
        self.failed = 0
        self.tmpdirs = []
        self.hash_as = hash_as
        self.max_detail_lines = max_detail_lines

    def _desc(self, desc):
        return desc.replace("#", self.hash_as)

    def _detail(self, detail):
        if detail is None or detail == "":
            return
        for line in str(detail).splitlines()[:self.max_detail_lines]:
            print(f"#   {line}")

    def check(self, cond, desc, detail="", todo=None):
        self.n += 1
        line = f"{'ok' if cond else 'not ok'} {self.n} - {self._desc(desc)}"
        if todo:
            line += f" # TODO {todo}"
        elif not cond:
            self.failed += 1
        print(line)
        if not cond or todo:
            self._detail(detail)
        sys.stdout.flush()
        return bool(cond)

    def skip(self, desc, why):
        self.n += 1
        print(f"ok {self.n} - {self._desc(desc)} # SKIP {why}")
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

    def done(self, exit=True):
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
        rc = 1 if self.failed else 0
        if not exit:
            return rc
        sys.exit(rc)
