"""tools/doc-examples.py OUT_DIR — every ```python block of README.md and docs/*.md as a
module of its own in OUT_DIR (README_1.py, caches_3.py, ...), for mypy --strict: the
examples a user copies must type-check as they run (tests/test_docs.py runs them)."""

import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
FENCE = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def main(out: str) -> None:
    target = pathlib.Path(out)
    target.mkdir(parents=True, exist_ok=True)
    for old in target.glob("*.py"):
        old.unlink()
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for n, match in enumerate(FENCE.finditer(page.read_text()), 1):
            line = page.read_text()[:match.start()].count("\n") + 2
            (target / f"{page.stem}_{n}.py").write_text(
                f"# {page.relative_to(ROOT)}, line {line}\n{match.group(1)}")


if __name__ == "__main__":
    main(sys.argv[1])
