"""A worker process for tests/test_redis_tiered.py and bench/redis.py: one TieredCache on a
shared Redis, driven by JSON lines on stdin, answering with JSON lines on stdout.

    python tests/redis_worker.py REDIS_URL NAMESPACE

Requests ({"op": ...}):
  get key                    -> {"value": v}
  set key value              -> {"read_back": what a read right after the write returned,
                                "t": time.monotonic() when the write returned}
  delete key                 -> {"read_back": ...}
  await key value [timeout]  -> polls get(key) until it returns value: {"ok", "seen": the
                                distinct values read, in order, "polls"}
  reads key n                -> n reads: {"values": distinct values, "local_hits": the L1's
                                hits during them}
  memo x threads             -> `threads` threads call a function memoized with
                                cached(tiered, condition=Condition()) on x at once:
                                {"results", "calls": how often it ran in this process}
  stamps                     -> {"stamps": [[key, time.monotonic()] of each invalidation
                                heard since the last call]}
  stats                      -> {"l1", "currbytes", "invalidations", "tracking"}
  quit
"""

from __future__ import annotations

import json
import sys
import threading
import time

import redis

import memleash

MISSING = "<missing>"


def main(url: str, namespace: str) -> None:
    client = redis.Redis.from_url(url)
    l1 = memleash.LRUCache(10_000, max_bytes=1 << 20)
    tc = memleash.TieredCache(l1, client, namespace=namespace)
    stamps: list[list[object]] = []
    tc._local.on_invalidate = lambda keys: stamps.extend(
        [k.decode(), time.monotonic()] for k in (keys or [b"*"]))
    calls = [0]
    memo_ns = memleash.TieredCache(memleash.LRUCache(100), client, namespace=namespace + "-memo")

    @memleash.cached(memo_ns, condition=threading.Condition())
    def slow_double(x: int) -> int:
        calls[0] += 1
        client.incr(f"{namespace}-calls")
        time.sleep(0.05)          # long enough for the other threads to arrive
        return 2 * x

    tc.get("warm-up")             # starts tracking before the first request
    out = sys.stdout
    for line in sys.stdin:
        req = json.loads(line)
        op = req["op"]
        if op == "quit":
            break
        if op == "get":
            reply: dict[str, object] = {"value": tc.get(req["key"], MISSING)}
        elif op == "set":
            tc[req["key"]] = req["value"]
            returned = time.monotonic()
            reply = {"read_back": tc.get(req["key"], MISSING), "t": returned}
        elif op == "delete":
            del tc[req["key"]]
            reply = {"read_back": tc.get(req["key"], MISSING)}
        elif op == "await":
            seen: list[object] = []
            polls = 0
            deadline = time.monotonic() + req.get("timeout", 30)
            while True:
                value = tc.get(req["key"], MISSING)
                polls += 1
                if not seen or seen[-1] != value:
                    seen.append(value)
                if value == req["value"] or time.monotonic() > deadline:
                    break
            reply = {"ok": value == req["value"], "seen": seen, "polls": polls}
        elif op == "reads":
            before = l1._ml_stats()["hits"]
            values = []
            for _ in range(req["n"]):
                value = tc.get(req["key"], MISSING)
                if value not in values:
                    values.append(value)
            reply = {"values": values, "local_hits": l1._ml_stats()["hits"] - before}
        elif op == "memo":
            results: list[int] = []
            start = threading.Barrier(req["threads"])

            def call() -> None:
                start.wait()
                results.append(slow_double(req["x"]))

            threads = [threading.Thread(target=call) for _ in range(req["threads"])]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            reply = {"results": results, "calls": calls[0]}
        elif op == "stamps":
            reply = {"stamps": stamps[:]}
            del stamps[:len(reply["stamps"])]  # type: ignore[arg-type]
        elif op == "stats":
            reply = {"l1": len(l1), "currbytes": l1.currbytes, "tracking": tc.tracking,
                     "invalidations": tc.invalidations}
        else:
            reply = {"error": f"unknown op {op!r}"}
        out.write(json.dumps(reply) + "\n")
        out.flush()
    tc.close()
    memo_ns.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
