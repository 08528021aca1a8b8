"""``python -m memleash run [options] script.py [args...]``: run a script, then print
``memleash.report()`` (to stderr by default) — also when the script raises or exits.

``-m module`` runs a module instead of a script, as ``python -m`` does. ``--format``
chooses the table (default), ``json`` or ``prometheus``; ``--output FILE`` writes there.
``python -m memleash --version`` prints memleash's version and the interpreter it runs on.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import runpy
import sys
from typing import Optional, Sequence

from . import __version__
from .report import Report, report


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m memleash",
                                     description="memleash's command line.")
    parser.add_argument("--version", action="version",
                        version=f"memleash {__version__} (Python {platform.python_version()})")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a script and print memleash.report() at its end")
    run.add_argument("--format", choices=("table", "json", "prometheus"), default="table",
                     help="how the report is printed (default: table)")
    run.add_argument("--output", "-o", metavar="FILE",
                     help="write the report to FILE instead of stderr")
    run.add_argument("-m", dest="module", action="store_true",
                     help="the target is a module name, run as `python -m` does")
    run.add_argument("target", help="the script (or, with -m, the module) to run")
    run.add_argument("args", nargs=argparse.REMAINDER, help="its arguments")
    return parser


def _render(rep: Report, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(rep.to_dict(), indent=2)
    if fmt == "prometheus":
        return rep.to_prometheus()
    return str(rep)


def _emit(text: str, output: Optional[str]) -> None:
    if output is None:
        sys.stderr.write(text.rstrip("\n") + "\n")
        sys.stderr.flush()
    else:
        with open(output, "w", encoding="utf-8") as f:
            f.write(text.rstrip("\n") + "\n")


def main(argv: Optional[Sequence[str]] = None) -> int:
    opts = _parser().parse_args(argv)
    sys.argv = [opts.target, *opts.args]
    if not opts.module:
        if not os.path.exists(opts.target):
            print(f"python -m memleash run: no such file: {opts.target}", file=sys.stderr)
            return 2
        sys.path.insert(0, os.path.dirname(os.path.abspath(opts.target)))
    try:
        # the script's globals stay referenced until the report is taken: what they hold
        # is still alive, as it was when the script ended
        if opts.module:
            scope = runpy.run_module(opts.target, run_name="__main__", alter_sys=True)
        else:
            scope = runpy.run_path(opts.target, run_name="__main__")
    except SystemExit as exc:   # its traceback holds the script's frames, globals included
        _emit(_render(report(), opts.format), opts.output)
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or 0
        print(exc.code, file=sys.stderr)
        return 1
    except BaseException:
        _emit(_render(report(), opts.format), opts.output)
        raise
    _emit(_render(report(), opts.format), opts.output)
    del scope
    return 0

if __name__ == "__main__":
    sys.exit(main())
