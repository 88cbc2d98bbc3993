"""``poisondetect-precommit FILE...``: the pre-commit hook's entry point.

Scans each file pre-commit passes (the changed dataset files) with ``poisondetect scan``
and the options given before the files (e.g. ``--embedding-mode none``), quietly, and
exits with the worst exit code: 0 clean, 1 findings at ``--fail-on``, 2 an input error.
"""
from __future__ import annotations

import subprocess
import sys


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    # options that take a value keep it; everything else is a file to scan
    files: list[str] = []
    i = 0
    opts = []
    while i < len(args):
        a = args[i]
        if a.startswith("-"):
            opts.append(a)
            if "=" not in a and i + 1 < len(args) and not args[i + 1].startswith("-") and a not in _FLAGS:
                opts.append(args[i + 1])
                i += 1
        else:
            files.append(a)
        i += 1
    worst = 0
    for f in files:
        cmd = [sys.executable, "-m", "poisondetect.cli", "scan", f, "--no-progress", "--top", "3", *opts]
        rc = subprocess.run(cmd).returncode
        worst = max(worst, rc)
    return worst


#: scan options that take no value
_FLAGS = {"--skip-bad", "--redact", "-q", "--quiet", "--no-progress"}


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
