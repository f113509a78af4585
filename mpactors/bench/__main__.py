"""``python -m mpactors.bench``."""

from __future__ import annotations

__all__: list = []
import sys

from . import main

if __name__ == "__main__":
    sys.exit(main())
