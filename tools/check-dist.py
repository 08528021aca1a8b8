"""tools/check-dist.py DIST_DIR — what `make dist` promises about its sdist and wheels.

sdist: every file git tracks is in it (but CI's own files), and nothing else beside the
metadata setuptools writes (PKG-INFO, setup.cfg, the egg-info) — so it builds and tests
like a checkout, and a new directory left out of MANIFEST.in fails here, not for a user.
wheel: the package's modules, stubs and py.typed, the LICENSE, no C sources; each
extension has no debug sections, no RPATH/RUNPATH, a symbol table, and exports
PyInit__core alone; the tag is a manylinux one. Run in build/venv-dist (pyelftools comes
with auditwheel). Prints one line per file checked; exits 1 with the reasons otherwise.
"""

from __future__ import annotations

import io
import pathlib
import subprocess
import sys
import tarfile
import zipfile

from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile

ROOT = pathlib.Path(__file__).resolve().parent.parent
NOT_SHIPPED = (".ci/", ".gitignore")        # CI's own files stay in the repository
GENERATED = ("PKG-INFO", "setup.cfg", "pkg/memleash.egg-info/")


def check_sdist(path: pathlib.Path) -> list[str]:
    if not (ROOT / ".git").exists():
        return []   # built from an unpacked sdist: nothing to compare it with
    with tarfile.open(path) as tar:
        top = path.name.removesuffix(".tar.gz") + "/"
        names = {m.name.removeprefix(top) for m in tar.getmembers() if m.isfile()}
    problems = [f"{path.name}: {n} is not tracked by git (left over in the work tree?)"
                for n in sorted(names) if not n.startswith(GENERATED) and n not in _tracked()]
    problems += [f"{path.name}: lacks {n} (add it to MANIFEST.in)"
                 for n in sorted(_tracked()) if not n.startswith(NOT_SHIPPED) and n not in names]
    return problems


def _tracked() -> set[str]:
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                         check=True)
    return set(out.stdout.split())


def check_wheel(path: pathlib.Path) -> list[str]:
    problems = []
    platform = path.name.removesuffix(".whl").split("-")[-1]
    if not all(tag.startswith("manylinux") for tag in platform.split(".")):
        problems.append(f"{path.name}: platform tag {platform} is not manylinux (auditwheel?)")
    with zipfile.ZipFile(path) as whl:
        names = set(whl.namelist())
        shipped = {f"memleash/{p.name}" for p in (ROOT / "pkg" / "memleash").iterdir()
                   if p.suffix in (".py", ".pyi") or p.name == "py.typed"}
        problems += [f"{path.name}: lacks {n}" for n in sorted(shipped - names)]
        problems += [f"{path.name}: ships C source {n}" for n in sorted(names)
                     if n.endswith((".c", ".h"))]
        if not any(n.endswith(".dist-info/licenses/LICENSE") for n in names):
            problems.append(f"{path.name}: no LICENSE in its .dist-info")
        for name in sorted(n for n in names if n.endswith(".so")):
            problems += [f"{path.name}: {name}: {p}" for p in _check_elf(whl.read(name))]
    return problems


def _check_elf(data: bytes) -> list[str]:
    elf = ELFFile(io.BytesIO(data))
    sections = [s.name for s in elf.iter_sections()]
    problems = [f"carries debug section {s} (not stripped)" for s in sections
                if s.startswith(".debug")]
    if ".symtab" not in sections:
        problems.append("has no symbol table (stripped too far: native stacks lose names)")
    for sec in elf.iter_sections():
        if isinstance(sec, DynamicSection):
            problems += [f"has {tag.entry.d_tag} {getattr(tag, 'runpath', None) or tag.rpath}"
                         for tag in sec.iter_tags() if tag.entry.d_tag in ("DT_RPATH", "DT_RUNPATH")]
    dynsym = elf.get_section_by_name(".dynsym")
    exported = sorted(s.name for s in dynsym.iter_symbols()
                      if s["st_shndx"] != "SHN_UNDEF" and s["st_info"]["bind"] != "STB_LOCAL"
                      and s.name) if dynsym else []
    if exported != ["PyInit__core"]:
        problems.append(f"exports {exported[:5]}{'...' if len(exported) > 5 else ''}, "
                        "not PyInit__core alone")
    return problems


def main(dist: str) -> int:
    files = sorted(pathlib.Path(dist).iterdir())
    sdists = [f for f in files if f.name.endswith(".tar.gz")]
    wheels = [f for f in files if f.suffix == ".whl"]
    problems = [] if len(sdists) == 1 else [f"{dist}: {len(sdists)} sdists, not one"]
    if not wheels:
        problems.append(f"{dist}: no wheel")
    for f in sdists + wheels:
        found = check_sdist(f) if f in sdists else check_wheel(f)
        print(f"check-dist: {f.name} ({f.stat().st_size / 1024:.0f} KiB): "
              f"{'ok' if not found else f'{len(found)} problem(s)'}")
        problems += found
    for p in problems:
        print(f"check-dist: {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
