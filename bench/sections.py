"""Rewriting some sections of docs/benchmarks.md in place (the bench scripts that can run
alone: bench/redis_cache.py, bench/tinylfu.py)."""

from __future__ import annotations


def replace_sections(path: str, new: str, prefix: str) -> None:
    """Replaces the sections of `path` whose heading starts with `prefix` (`### Redis:`)
    with `new` (in place of the first of them, or at the end), keeping everything else."""
    with open(path) as f:
        text = f.read()
    parts = text.split("\n### ")
    head, rest = parts[0], ["### " + p for p in parts[1:]]
    kept, where = [], None
    for part in rest:
        if part.startswith(prefix):
            if where is None:
                where = len(kept)
            continue
        kept.append(part if part.endswith("\n") else part + "\n")
    if where is None:
        where = len(kept)
    kept.insert(where, new)
    with open(path, "w") as f:
        f.write(head.rstrip("\n") + "\n\n" + "\n".join(p.rstrip("\n") + "\n" for p in kept))
