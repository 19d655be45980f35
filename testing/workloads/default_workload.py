"""The built-in workload of `./nitro run`: a Python program that exercises the
heap the way services do (JSON documents, an SQLite database, threads,
subprocesses), with deterministic output."""
import hashlib
import json
import sqlite3
import subprocess
import sys
import threading


def json_round_trips(n):
    digest = hashlib.sha256()
    for i in range(n):
        doc = {"id": i, "tags": [f"t{j}" for j in range(i % 17)],
               "nested": {"k" * (i % 13): list(range(i % 50))}}
        digest.update(json.dumps(json.loads(json.dumps(doc)), sort_keys=True).encode())
    return digest.hexdigest()[:16]


def sqlite_work(rows):
    db = sqlite3.connect(":memory:")
    db.execute("create table t (k integer primary key, v text, n real)")
    db.executemany("insert into t (v, n) values (?, ?)",
                   ((f"value-{i % 97}" * (1 + i % 5), i * 0.5) for i in range(rows)))
    count, total = db.execute("select count(*), sum(n) from t").fetchone()
    groups = db.execute("select count(distinct v) from t").fetchone()[0]
    db.close()
    return count, total, groups


def threaded(workers, items):
    results = [None] * workers

    def work(idx):
        acc = {}
        for i in range(items):
            acc.setdefault(i % 101, []).append(str(i * idx))
        results[idx] = sum(len(v) for v in acc.values())

    threads = [threading.Thread(target=work, args=(i,)) for i in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(results)


def main():
    print("json digest:", json_round_trips(20000))
    print("sqlite (rows, sum, groups):", sqlite_work(50000))
    print("threads items:", threaded(4, 100000))
    child = subprocess.run([sys.executable, "-c", "print(sum(range(10**6)))"],
                           capture_output=True, text=True, check=True)
    print("subprocess:", child.stdout.strip())


if __name__ == "__main__":
    main()
