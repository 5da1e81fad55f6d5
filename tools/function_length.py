"""Fail when a function or method is longer than the limit (lines from ``def`` to its
last line, decorators and docstring included): ``python tools/function_length.py src --max 60``."""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path


def long_functions(root: Path, limit: int) -> list[str]:
    """``path:line name (N lines)`` for every function of the ``.py`` files under ``root``
    longer than ``limit`` lines."""
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                start = min([node.lineno] + [d.lineno for d in node.decorator_list])
                length = (node.end_lineno or node.lineno) - start + 1
                if length > limit:
                    found.append(f"{path}:{node.lineno} {node.name} ({length} lines)")
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("root", type=Path)
    parser.add_argument("--max", type=int, default=60)
    args = parser.parse_args()
    found = long_functions(args.root, args.max)
    for line in found:
        print(line)
    if found:
        print(f"{len(found)} function(s) longer than {args.max} lines", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
