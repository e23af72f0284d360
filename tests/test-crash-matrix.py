#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The crash matrix (crash-matrix.md): crash-service, linked to libluo-faults,
is killed with SIGKILL at every step of its lifecycle (LUO_TEST_CRASH_AT
names the fault point), in the exec handover and through the agent; then it
is started again as a supervisor would, and what comes back is checked
against what luo promises:

  - with the agent, the last deposited state is retrievable and whole
    (every file of the generation the component names, none missing);
  - without it, a clean fresh start that says why, never a half state;
  - the new binary crashing after the switch, the agent present: the old
    binary, started again by the driver (libluo does not relaunch a
    crashed process: that is the supervisor's fallback), gets its state
    from the agent.

After every cell: no fd more or less in this driver nor in luod (compared
with before the cell), no memfd of the service held by any process
(/proc/*/fd), no memfd:luo-* held by any process this driver started, and
no process of the cell left (the driver is a child subreaper: orphans,
such as libluo's mm reaper, come back to it and are reaped).

Usage: test-crash-matrix.py LUOD CRASH-SERVICE CRASH-SERVICE-NEW [--only CELL]...
Prints one line per cell: transport, point, expected, observed, ok/FAIL;
exits 1 on any FAIL.
"""

import ctypes
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

PR_SET_CHILD_SUBREAPER = 36
SETTLE_S = 3.0            # how long leaks may take to go away (luod's epoll, the mm reaper's 100 ms)
RUN_TIMEOUT_S = 30
EXEC_FILES = 8            # restore#3 / finish#3 fall in the middle
AGENT_FILES = 260         # > LUO_AGENT_FDS_PER_MSG (250): a deposit takes two messages


class Cell:
    def __init__(self, transport, point, kind, expect, what, keep=True):
        self.transport = transport  # "exec", "agent", "agent+exec"
        self.point = point          # LUO_TEST_CRASH_AT, or None: the baseline
        self.kind = kind            # how the lifecycle runs, below
        self.expect = expect        # set of acceptable outcomes
        self.what = what
        self.keep = keep

    @property
    def name(self):
        return "%s/%s%s" % (self.transport, self.point or "none", "" if self.keep else "/no-keep")


R1 = "restored gen=1"
R2 = "restored gen=2"
FRESH = "fresh"

# kind: exec         exec-start (old) -> luo_update -> exec-next (new); restart: exec-start again
#       agent-run    agent-run deposits gen 1 then gen 2; restart: start --agent --withdraw
#       agent-start  agent-run clean, then start --agent crashes; restart: start --agent --withdraw
#       agent-update exec-start --agent: gen 1 deposited, then luo_update; restart: the OLD binary
CELLS = [
    Cell("exec", None, "exec", {"new: " + R1}, "no crash: the update itself"),
    Cell("exec", "preserve#1", "exec", {FRESH}, "first luo_session_preserve_fd(): dup taken, handler not called"),
    Cell("exec", "preserve#5", "exec", {FRESH}, "5th preserve: 4 files preserved"),
    Cell("exec", "after-freeze", "exec", {FRESH}, "luo_update(): every file frozen, nothing saved"),
    Cell("exec", "serialize-built", "exec", {FRESH}, "blob built in memory, no memfd yet"),
    Cell("exec", "serialize-unsealed", "exec", {FRESH}, "blob written to memfd:luo-handover, not sealed"),
    Cell("exec", "before-exec", "exec", {FRESH}, "cloexec cleared, mm reaper started, just before execve()"),
    Cell("exec", "next:open-start", "exec", {FRESH}, "new image, first line of luo_open(): nothing read"),
    Cell("exec", "next:restore#3", "exec", {FRESH}, "new image, luo_open(): 2 of 8 files adopted"),
    Cell("exec", "next:after-open", "exec", {FRESH}, "new image, luo_open() done, before luo_ready()"),
    Cell("exec", "next:after-ready", "exec", {FRESH}, "new image, after luo_ready()"),
    Cell("exec", "next:finish#3", "exec", {FRESH}, "new image, luo_session_finish(): 2 of 8 files finished"),
    Cell("agent", None, "agent-run", {R2}, "no crash: gen 1 then gen 2 deposited"),
    Cell("agent", "preserve#1", "agent-run", {FRESH}, "preserving gen 1, nothing deposited yet"),
    Cell("agent", "deposit-unsealed#1", "agent-run", {FRESH}, "1st deposit: blob memfd written, not sealed"),
    Cell("agent", "deposit-send#1", "agent-run", {FRESH}, "1st deposit: blob + 249 of 260 fds sent, 11 not"),
    Cell("agent", "deposit-unreplied#1", "agent-run", {FRESH, R1},
         "1st deposit: all sent, reply not read (either is whole)"),
    Cell("agent", "after-deposit#1", "agent-run", {R1}, "1st deposit answered"),
    Cell("agent", "preserve#261", "agent-run", {R1}, "replacing files for gen 2 (1 of 260 replaced)"),
    Cell("agent", "deposit-unsealed#2", "agent-run", {R1}, "2nd deposit: blob written, not sealed"),
    Cell("agent", "deposit-send#3", "agent-run", {R1}, "2nd deposit: blob + 249 of 260 fds sent"),
    Cell("agent", "deposit-unreplied#2", "agent-run", {R1, R2},
         "2nd deposit: all sent, reply not read (either is whole)"),
    Cell("agent", "after-deposit#2", "agent-run", {R2}, "2nd deposit answered"),
    Cell("agent", "after-deposit#2", "agent-run", {FRESH},
         "deposits without KEEP_ON_CRASH: forgotten at the crash (luo.h)", keep=False),
    Cell("agent", "after-open", "agent-start", {R2}, "restart: luo_open() done, nothing retrieved"),
    Cell("agent", "retrieve", "agent-start", {R2}, "restart: RETRIEVE's first 250 fds received"),
    Cell("agent", "restore#100", "agent-start", {R2}, "restart: 99 of 260 files adopted"),
    Cell("agent", "after-ready", "agent-start", {R2}, "restart: retrieved, checked, luo_ready()"),
    Cell("agent", "finish#100", "agent-start", {R2}, "restart: luo_session_finish(), 99 files finished"),
    Cell("agent+exec", None, "agent-update", {"new: " + R1}, "no crash: the update, gen 1 also in the agent"),
    Cell("agent+exec", "after-freeze", "agent-update", {"old: " + R1}, "old image frozen (not detached)"),
    Cell("agent+exec", "before-exec", "agent-update", {"old: " + R1}, "DETACH sent, just before execve()"),
    Cell("agent+exec", "next:open-start", "agent-update", {"old: " + R1}, "new binary, start of luo_open()"),
    Cell("agent+exec", "next:restore#3", "agent-update", {"old: " + R1}, "new binary, 2 files adopted"),
    Cell("agent+exec", "next:after-open", "agent-update", {"old: " + R1},
         "new binary after the switch: luo_open() done, before luo_ready()"),
]


def fds_of(pid):
    """{fd: link} of a process; {} if gone."""
    out = {}
    d = "/proc/%d/fd" % pid
    try:
        names = os.listdir(d)
    except OSError:
        return out
    for n in names:
        try:
            out[int(n)] = os.readlink(os.path.join(d, n))
        except OSError:
            pass
    return out


def ppid_of(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            s = f.read()
        return int(s[s.rindex(")") + 2:].split()[1])
    except (OSError, ValueError, IndexError):
        return -1


def all_pids():
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def descendants(root):
    kids = {}
    for p in all_pids():
        kids.setdefault(ppid_of(p), []).append(p)
    out, todo = [], [root]
    while todo:
        for c in kids.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def reap_orphans(keep):
    """Reap the zombies among our direct children that are not in @keep."""
    for p in all_pids():
        if p in keep or ppid_of(p) != os.getpid():
            continue
        try:
            os.waitpid(p, os.WNOHANG)
        except ChildProcessError:
            pass


class Matrix:
    def __init__(self, luod, old, new):
        self.luod_bin, self.old, self.new = luod, old, new
        self.tmp = tempfile.mkdtemp(prefix="luo-crash-")
        self.sock = os.path.join(self.tmp, "agent.sock")
        self.env = {k: v for k, v in os.environ.items() if k != "LUO_TEST_CRASH_AT" and not k.startswith("LUO_HANDOVER")}
        self.env["LUO_AGENT_SOCKET"] = self.sock
        self.luod = None
        self.logs = []

    def start_luod(self):
        self.luod_log = open(os.path.join(self.tmp, "luod.log"), "w")
        self.luod = subprocess.Popen([self.luod_bin], env=self.env, stdout=self.luod_log,
                                     stderr=subprocess.STDOUT)
        for _ in range(400):
            if os.path.exists(self.sock):
                return
            time.sleep(0.025)
        raise SystemExit("luod did not create " + self.sock)

    def stop_luod(self):
        if self.luod:
            self.luod.send_signal(signal.SIGTERM)
            try:
                self.luod.wait(5)
            except subprocess.TimeoutExpired:
                self.luod.kill()
                self.luod.wait()
            self.luod_log.close()
            self.luod = None

    def run(self, args, crash=None):
        env = dict(self.env)
        if crash:
            env["LUO_TEST_CRASH_AT"] = crash
        p = subprocess.run(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           timeout=RUN_TIMEOUT_S, stdin=subprocess.DEVNULL)
        self.logs.append("$ %s%s\n%s%s(exit %d)\n" % ("LUO_TEST_CRASH_AT=%s " % crash if crash else "",
                                                      " ".join(args), p.stdout, p.stderr, p.returncode))
        return p

    @staticmethod
    def result(p):
        """The RESULT line's outcome ("restored gen=G", "fresh", ...) and the build that said it."""
        m = re.findall(r"^RESULT (.*)$", p.stdout, re.M)
        if not m:
            return None, None
        line = m[-1]
        b = re.search(r"build=(\w+)", line)
        r = re.match(r"(restored gen=\d+|fresh)", line)
        return (r.group(1) if r else line), (b.group(1) if b else "?")

    def crashed_at(self, p, point):
        """Did @p die by the fault point (SIGKILL, and the point's line)?"""
        spec = point[len("next:"):] if point.startswith("next:") else point
        name, _, nth = spec.partition("#")
        return (p.returncode == -signal.SIGKILL and
                ("luo-fault: SIGKILL at %s#%s " % (name, nth or "1")) in p.stderr)

    def snapshot(self):
        return {"driver": fds_of(os.getpid()), "luod": fds_of(self.luod.pid)}

    def leaks(self, before, tag):
        """What is left behind once the cell is over; [] if nothing."""
        deadline = time.monotonic() + SETTLE_S
        while True:
            found = []
            reap_orphans({self.luod.pid})
            now = fds_of(os.getpid())
            if sorted(now.values()) != sorted(before["driver"].values()):
                found.append("driver fds %s -> %s" % (sorted(before["driver"].values()), sorted(now.values())))
            now = fds_of(self.luod.pid)
            if sorted(now.values()) != sorted(before["luod"].values()):
                extra = sorted(set(now.values()) - set(before["luod"].values()))
                found.append("luod fds %d -> %d %s" % (len(before["luod"]), len(now), extra[:4]))
            for pid in all_pids():
                for link in fds_of(pid).values():
                    if link.startswith("/memfd:crash-%s-" % tag):
                        found.append("pid %d holds %s" % (pid, link))
                        break
            for pid in descendants(os.getpid()):
                if pid == self.luod.pid:
                    continue
                found.append("process %d of the cell still there" % pid)
            for pid in descendants(os.getpid()):
                for link in fds_of(pid).values():
                    if link.startswith("/memfd:luo-"):
                        found.append("pid %d holds %s" % (pid, link))
                        break
            if not found or time.monotonic() > deadline:
                return found
            time.sleep(0.05)

    def svc(self, binary, mode, tag, files, *extra):
        return [binary, mode, "--tag", tag, "--files", str(files)] + list(extra)

    def run_cell(self, cell, index):
        """Run one cell: (observed, problems)."""
        tag = "%d-%d" % (os.getpid(), index)
        before = self.snapshot()
        problems = []
        observed = "?"
        self.logs = []

        def expect_crash(p):
            if cell.point and not self.crashed_at(p, cell.point):
                problems.append("no crash at %s (exit %d)" % (cell.point, p.returncode))

        if cell.kind == "exec":
            first = self.svc(self.old, "exec-start", tag, EXEC_FILES, "--next", self.new)
            p = self.run(first, cell.point)
            if cell.point is None:
                r, b = self.result(p)
                observed = "%s: %s" % (b, r)
            else:
                expect_crash(p)
                # The supervisor starts it again: a fresh start, then an update that works.
                q = self.run(first)
                m = re.search(r"^OPEN build=old incoming=(\d) lu=(\d+) incoming_error=(-?\d+)", q.stdout, re.M)
                r, b = self.result(q)
                if m and m.groups() == ("0", "0", "0"):
                    observed = "%s (no handover, error 0); then update: %s" % (FRESH, r)
                    if (r, b) != (R1, "new") or q.returncode != 0:
                        problems.append("the update after the restart failed")
                else:
                    observed = "restart: " + (m.group(0) if m else "no OPEN line")
        elif cell.kind in ("agent-run", "agent-start"):
            extra = ["--agent"] + ([] if cell.keep else ["--no-keep"])
            run = self.svc(self.old, "agent-run", tag, AGENT_FILES, *extra)
            p = self.run(run, cell.point if cell.kind == "agent-run" else None)
            if cell.kind == "agent-run":
                expect_crash(p)
                if cell.point is None and p.returncode != 0:
                    problems.append("agent-run failed")
            else:
                if p.returncode != 0:
                    problems.append("agent-run failed")
                p = self.run(self.svc(self.old, "start", tag, AGENT_FILES, "--agent"), cell.point)
                expect_crash(p)
            q = self.run(self.svc(self.old, "start", tag, AGENT_FILES, "--agent", "--withdraw"))
            r, b = self.result(q)
            observed = r or "no RESULT (exit %d)" % q.returncode
            if q.returncode != 0:
                problems.append("restart exit %d" % q.returncode)
        elif cell.kind == "agent-update":
            first = self.svc(self.old, "exec-start", tag, EXEC_FILES, "--next", self.new, "--agent")
            p = self.run(first, cell.point)
            if cell.point is None:
                r, b = self.result(p)
                observed = "%s: %s" % (b, r)
            else:
                expect_crash(p)
                # The supervisor's fallback: the old binary, from the agent.
                q = self.run(self.svc(self.old, "start", tag, EXEC_FILES, "--agent", "--withdraw"))
                r, b = self.result(q)
                observed = "%s: %s" % (b, r)
                if "from=agent" not in q.stdout:
                    problems.append("not restored from the agent")
        ok_outcome = observed in cell.expect or (observed.split(" (")[0] in cell.expect)
        if not ok_outcome:
            problems.append("unexpected outcome")
        problems += self.leaks(before, tag)
        return observed, problems


def main(argv):
    only = []
    args = []
    i = 1
    while i < len(argv):
        if argv[i] == "--only" and i + 1 < len(argv):
            only.append(argv[i + 1])
            i += 2
        else:
            args.append(argv[i])
            i += 1
    if len(args) != 3:
        print(__doc__)
        return 2
    luod, old, new = (os.path.abspath(a) for a in args)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        print("warning: cannot become a child subreaper; orphans are not checked")
    m = Matrix(luod, old, new)
    m.start_luod()
    cells = [c for c in CELLS if not only or c.name in only]
    failed = 0
    t0 = time.monotonic()
    fmt = "%-3s %-10s %-24s %-34s %-44s %s"
    print(fmt % ("#", "transport", "point", "expected", "observed", "result"))
    try:
        for n, cell in enumerate(cells, 1):
            observed, problems = m.run_cell(cell, n)
            verdict = "ok" if not problems else "FAIL"
            print(fmt % (n, cell.transport, (cell.point or "none") + ("" if cell.keep else " (no keep)"),
                         " | ".join(sorted(cell.expect)), observed, verdict))
            if problems:
                failed += 1
                print("    what: %s" % cell.what)
                for pr in problems:
                    print("    problem: %s" % pr)
                for log in m.logs:
                    print("    " + log.replace("\n", "\n    "))
            sys.stdout.flush()
    finally:
        m.stop_luod()
        with open(os.path.join(m.tmp, "luod.log")) as f:
            luod_log = f.read()
        if failed:
            print("--- luod log\n" + luod_log)
        for f in os.listdir(m.tmp):
            os.unlink(os.path.join(m.tmp, f))
        os.rmdir(m.tmp)
    print("%d cells, %d failed, %.1f s" % (len(cells), failed, time.monotonic() - t0))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
