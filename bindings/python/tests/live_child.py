"""A long-running Python child for the attach/top tests.

Run under LD_PRELOAD=libnitroheap.so (telemetry=1 is the default) with
PYTHONMALLOC=malloc, so that every Python allocation goes through NitroHeap.
It allocates and frees in a loop, prints "ready" once the loop runs, and
exits normally (so NitroHeap removes its statistics segment) when stdin
closes or after --seconds.

    live_child.py [--seconds S] [--partition NAME]

With --partition (PYTHONPATH must reach the nitroheap package) it also
keeps 64 objects of 4000 bytes in a private partition of that name.
"""
import argparse
import os
import threading
import time

parser = argparse.ArgumentParser()
parser.add_argument("--seconds", type=float, default=60.0)
parser.add_argument("--partition", default=None)
args = parser.parse_args()

stop = threading.Event()


def watch_stdin():
    # The raw fd, not sys.stdin: a daemon thread blocked inside a buffered
    # reader makes interpreter shutdown abort ("could not acquire lock").
    try:
        while os.read(0, 4096):
            pass
    finally:
        stop.set()


threading.Thread(target=watch_stdin, daemon=True).start()

partition = None
if args.partition:
    import nitroheap
    partition = nitroheap.Partition(args.partition)
    for _ in range(64):
        partition.malloc(4000)

keep = []
deadline = time.monotonic() + args.seconds
announced = False
i = 0
while not stop.is_set() and time.monotonic() < deadline:
    for _ in range(200):
        i += 1
        keep.append(bytearray(64 + i % 3000))
        keep.append({"k%d" % i: [i] * (i % 20)})
        if len(keep) > 4000:
            del keep[:2000]
    if not announced:
        print("ready", flush=True)
        announced = True
    time.sleep(0.01)

if partition is not None:
    partition.destroy()
print("bye", flush=True)
