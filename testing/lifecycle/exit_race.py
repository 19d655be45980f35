# Defect 1 (issue 8): exit() unmaps NitroHeap's statistics segment while the
# background thread nitroheap-bg writes into it -> SIGSEGV in about 1 of 25
# exits of multithreaded Python programs run 3 at a time on a 2-core machine.
#
# Three threads do JSON and in-memory SQLite work and a fourth (daemon) keeps
# allocating while the interpreter finalizes and exits. Must exit 0 and
# print "ok".
#
# Usage: exit_race.py [ROUNDS [CHILDREN]]
#   ROUNDS    work per thread (default 60)
#   CHILDREN  first fork this many children (2 at a time), each doing the
#             same with ROUNDS // 4 and exiting through the interpreter's
#             normal shutdown; report those that die of a signal or hang
#             (30 s). One exit seldom hits the race; many do.
import json
import os
import random
import signal
import sqlite3
import sys
import threading
import time


def work(seed, rounds):
    rng = random.Random(seed)
    db = sqlite3.connect(":memory:")
    db.execute("create table t (k integer primary key, v text)")
    for r in range(rounds):
        doc = {"id": r, "tags": [str(rng.random()) for _ in range(rng.randrange(1, 40))],
               "nested": {"x": list(range(rng.randrange(100))), "s": "y" * rng.randrange(2000)}}
        text = json.dumps(doc, sort_keys=True)
        if json.loads(text)["id"] != r:
            raise AssertionError("json round trip")
        db.execute("insert or replace into t values (?, ?)", (r % 50, text))
        if r % 10 == 0:
            db.execute("select count(*), sum(length(v)) from t").fetchone()
    db.close()


def forever(seed):
    while True:
        work(seed, 20)


def race(rounds, seed):
    threads = [threading.Thread(target=work, args=(seed + i, rounds)) for i in range(3)]
    threading.Thread(target=forever, args=(seed + 99,), daemon=True).start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def children(count, rounds):
    """Forks `count` children, 2 at a time; returns how many failed."""
    failed = 0
    running = {}
    started = 0
    while started < count or running:
        if started < count and len(running) < 2:
            pid = os.fork()
            if pid == 0:
                race(max(rounds // 4, 1), random.randrange(1 << 30))
                sys.exit(0)  # the interpreter's normal shutdown, then exit()
            running[pid] = time.monotonic() + 30
            started += 1
            continue
        time.sleep(0.002)
        for pid, deadline in list(running.items()):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done == 0 and time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                print(f"exit_race.py: child {pid} did not exit within 30 s (killed)", file=sys.stderr)
            elif done == 0:
                continue
            elif os.WIFSIGNALED(status):
                print(f"exit_race.py: child {pid} died of signal {os.WTERMSIG(status)}", file=sys.stderr)
            elif os.waitstatus_to_exitcode(status) != 0:
                print(f"exit_race.py: child {pid} exited {os.waitstatus_to_exitcode(status)}", file=sys.stderr)
            else:
                del running[pid]
                continue
            failed += 1
            del running[pid]
    return failed


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 60
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    failed = children(count, rounds) if count > 0 else 0
    if count > 0:
        print(f"exit_race.py: {count} children, {failed} failed", file=sys.stderr)
    race(rounds, 1)
    print("ok" if failed == 0 else "FAIL")
    sys.exit(0 if failed == 0 else 1)


main()
