"""``python -m tracker`` — see :mod:`tracker.cli`."""

from __future__ import annotations

import os

# Before torch loads: libgomp's threads spin-wait by default, which makes SAM 2 several times
# slower whenever other processes share the cores (measured in benchmarks/README.md). A short spin
# costs ~4 % on an idle machine and keeps a busy one from thrashing.
os.environ.setdefault("GOMP_SPINCOUNT", "10000")

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
