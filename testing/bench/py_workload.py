"""Allocation-heavy Python workload for the benchmark suite: dicts, lists,
JSON, string building. Deterministic (run with PYTHONHASHSEED=0); prints one
line "python ok checksum=<hex> ops=<n>".

Usage: python3 py_workload.py [SCALE]     (1 = benchmark size)
"""
import hashlib
import json
import sys


def records(n, seed):
    out = []
    x = seed
    for i in range(n):
        x = (x * 6364136223846793005 + 1442695040888963407) & (2**64 - 1)
        out.append({
            "id": i,
            "name": "user-%d-%x" % (i, x >> 40),
            "tags": ["t%d" % ((x >> s) & 63) for s in range(0, (x & 7) * 4, 4)],
            "score": (x >> 11) / 2.0**53,
            "nested": {"a": list(range(x & 15)), "b": {"c": str(x & 0xffff)}},
        })
    return out


def one_round(r, digest):
    data = records(4000, r + 1)
    text = json.dumps(data, sort_keys=True)
    back = json.loads(text)
    index = {}
    for rec in back:
        for t in rec["tags"]:
            index.setdefault(t, []).append(rec["id"])
    parts = []
    for key in sorted(index):
        ids = index[key]
        parts.append(key + ":" + ",".join(str(i) for i in ids[:50]))
    report = "\n".join(parts)
    words = {}
    for rec in back:
        for w in rec["name"].split("-"):
            words[w] = words.get(w, 0) + 1
    s = ""
    for i in range(2000):
        s += "%d;" % (i * r)
    digest.update(text.encode())
    digest.update(report.encode())
    digest.update(s.encode())
    digest.update(str(len(words)).encode())
    return len(back)


def main():
    scale = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
    rounds = max(1, int(45 * scale))
    digest = hashlib.sha256()
    ops = 0
    for r in range(rounds):
        ops += one_round(r, digest)
    print("python ok checksum=%s ops=%d" % (digest.hexdigest()[:16], ops))


if __name__ == "__main__":
    main()
