"""Keep the C heap of a long-running process small (glibc malloc only).

The embedded ClickHouse engine runs many threads and the worker writes from an
executor thread; glibc gives every thread that contends for the heap its own
arena (up to 8 per core), each holding on to memory freed into it. Measured on
the ingest benchmark (300k events, 30k students): RSS at the end 1,032 MiB with
the default, 861 MiB with two arenas, at the same events/s. ``limit_arenas``
sets that limit (like ``MALLOC_ARENA_MAX=2``) and must run before threads
start; ``release_free_memory`` hands freed pages back to the system (called
after each state snapshot). Both do nothing where glibc is not the allocator.

``keep_out("pandas")``: pyarrow imports pandas whenever it is installed (chdb
depends on it) the first time it converts a Python list, to check whether the
list is a pandas object: ~35 MiB of RSS in a worker that never uses a DataFrame.
Making the import fail as if pandas were not installed is what pyarrow handles
(putting ``None`` in ``sys.modules`` is not: its shim then reads
``None.__version__``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import importlib.abc
import importlib.machinery
import logging
import sys
from collections.abc import Sequence
from types import ModuleType

log = logging.getLogger(__name__)

M_ARENA_MAX = -8  # mallopt parameter (malloc.h)
ARENAS = 2


def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
    except OSError:
        return None
    if not hasattr(libc, "mallopt") or not hasattr(libc, "malloc_trim"):
        return None  # not glibc
    return libc


_LIBC = _libc()


def limit_arenas(arenas: int = ARENAS) -> bool:
    """Cap glibc's malloc arenas; True if the limit was set."""
    if _LIBC is None:
        return False
    return bool(_LIBC.mallopt(M_ARENA_MAX, arenas))


def release_free_memory() -> None:
    """Return the heap's free pages to the system (``malloc_trim(0)``)."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


class _NotInstalled(importlib.abc.MetaPathFinder):
    """Fails ``import <package>`` (and its submodules) as if it were not installed."""

    def __init__(self, package: str) -> None:
        self.package = package

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname == self.package or fullname.startswith(self.package + "."):
            raise ModuleNotFoundError(
                f"No module named {fullname!r} (kept out of this process: infra.memory)",
                name=fullname,
            )
        return None


def keep_out(package: str) -> bool:
    """Make later imports of ``package`` fail as if it were not installed; False if it
    is imported already (then it stays)."""
    if package in sys.modules:
        return False
    if not any(isinstance(f, _NotInstalled) and f.package == package for f in sys.meta_path):
        sys.meta_path.insert(0, _NotInstalled(package))
    return True
