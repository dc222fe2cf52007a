"""What a confined child may read and write, always as resolved real paths: the read roots, the hidden paths carved
out of them, and the Landlock layer built from both (``rootfs.py`` builds the child's root from the same roots).

Every path is resolved (``os.path.realpath``) before a rule is made from it: a rule on a symbolic link would grant
whatever the link points to (a venv's ``lib64 -> lib`` granted the whole ``lib``, hidden files included).
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Iterable, Iterator

from llm2.sandbox import landlock

# the scratch may hold regular files and directories only: no links, FIFOs, sockets or device nodes
_SCRATCH_RIGHTS_REFUSED = ("make_char", "make_sock", "make_fifo", "make_block", "make_sym")



def read_roots(exclude: Iterable[str] = ()) -> list[str]:
    """Directories the child may read, resolved: the interpreter, installed packages, llm2 itself and system
    libraries.

    Deliberately absent: the world cache, the working directory, home, /etc and /tmp (but the scratch directory),
    and /proc beyond the child's own entry (which ``confine`` adds, resolved in the child itself). Whatever the
    child can read it could put into an error message, which reaches the proposer. ``exclude``: paths beneath the
    roots the child must not read (a task's data shipped inside a package, say), resolved too; Landlock grants
    whole trees, so a root that holds one is replaced by its other entries, down to the excluded path.
    """
    import llm2

    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
             str(Path(llm2.__file__).resolve().parent)}
    roots.update(p for p in sys.path if p.endswith(("site-packages", "dist-packages")) or p.endswith("lib-dynload"))
    roots.update({"/usr", "/lib", "/lib64", "/lib32", "/sys/devices/system/cpu", "/proc/cpuinfo",
                  "/dev/null", "/dev/zero", "/dev/urandom", "/dev/random"})
    # from /etc only what the dynamic loader and time functions read: not /etc as a whole (shadow, keys)
    roots.update({"/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime"})
    resolved = {os.path.realpath(r) for r in roots if r and os.path.exists(r)}
    for hidden in resolved_hidden(exclude):
        resolved = set(carve_out(resolved, hidden))
    return sorted(resolved)


def resolved_hidden(paths: Iterable[str]) -> list[str]:
    """The real paths of ``paths`` (those that exist), without duplicates."""
    return sorted({os.path.realpath(p) for p in paths if os.path.lexists(p)})


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def carve_out(roots: Iterable[str], hidden: str) -> Iterator[str]:
    """The roots with ``hidden`` carved out, all resolved: each root above it is replaced by its entries (each
    resolved in turn: an entry that is a link to the tree above is carved like the tree itself)."""
    for root in roots:
        root = os.path.realpath(root)
        if _within(root, hidden):
            continue
        if not _within(hidden, root):
            yield root
            continue
        for entry in sorted(os.listdir(root)):
            path = os.path.realpath(os.path.join(root, entry))
            if path == root or _within(root, path):  # a link back to this tree or above it: its entries suffice
                continue
            if _within(hidden, path):
                yield from carve_out([path], hidden)
            elif not _within(path, hidden):
                yield path


def names_a_process(path: str) -> bool:
    return re.fullmatch(r"/proc/(self|thread-self|\d+)(/.*)?", path) is not None


def apply_landlock(roots: list[str], scratch: Path, locked: list[landlock.LandlockResult],
                   devices: Iterable[str] = ()) -> str:
    """The Landlock layer: read beneath ``roots``; write (no links, FIFOs, sockets or devices) in the scratch;
    /dev/null and the CUDA profile's devices writable as files."""
    result = landlock.restrict([os.path.realpath(r) for r in roots],
                               [os.path.realpath(scratch), "/dev/null", *(os.path.realpath(d) for d in devices)],
                               refused_write_rights=_SCRATCH_RIGHTS_REFUSED)
    locked.append(result)
    return f"ABI {result.abi}: {', '.join(result.features)}"
