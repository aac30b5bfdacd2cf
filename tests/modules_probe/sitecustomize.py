"""Put on PYTHONPATH of a `warroom` subprocess: at its exit, the names of every module it imported are written,
one a line, to the file WARROOM_TEST_MODULES names (tests/test_lazy_imports.py reads them)."""

import atexit
import os
import sys

_OUT = os.environ.get("WARROOM_TEST_MODULES")
if _OUT:

    def _write() -> None:
        with open(_OUT, "w", encoding="utf-8") as out:
            out.write("\n".join(sorted(sys.modules)))

    atexit.register(_write)
