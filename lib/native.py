"""Small C libraries of the project, compiled on first use and loaded through ctypes.

:mod:`lib.cell_kernels` (the trainer's fused cell steps), :mod:`lib.stream_kernels` (the
training trials' random streams) and :mod:`lib.fp_kernels` (the fixed-point polish's linear
algebra) each compile one C file with the system's C compiler
(``$CC``, else ``cc`` or ``gcc``) into ``$RNNBOOK_KERNELS`` (default: ``rnnbook-kernels-<uid>``
in the temporary directory), once per machine, and every process reuses the build. The file
name hashes the source, the flags, the compiler's version and the CPU's flags
(``-march=native``), so a changed source or another machine builds anew; the build is written
atomically. Without a compiler :func:`load` warns and returns None, and the callers use their
torch ops instead.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path

# IEEE rounding as written (no FMA contraction, no fast-math): the numbers do not depend on
# the vector width the compiler picks
FLAGS = ("-O3", "-march=native", "-ffp-contract=off", "-fno-math-errno", "-shared", "-fPIC")


def machine() -> str:
    """What a -march=native build depends on: the CPU's model and flags."""
    try:
        info = Path("/proc/cpuinfo").read_text()
        lines = [ln for ln in info.splitlines() if ln.startswith(("model name", "flags"))][:2]
        return "\n".join(lines)
    except OSError:
        return platform.processor() + platform.machine()


def compiler() -> str | None:
    return os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")


def build(source: Path, cc: str, flags: tuple = FLAGS, root: Path | None = None) -> Path:
    """Compile ``source`` into the kernel cache (atomically, if not there); return its path."""
    version = subprocess.run([cc, "--version"], capture_output=True, text=True).stdout
    text = f"{source.read_text()}\n{flags}\n{version}\n{machine()}"
    root = root or Path(os.environ.get("RNNBOOK_KERNELS", Path(tempfile.gettempdir())
                                       / f"rnnbook-kernels-{os.getuid()}"))
    path = root / f"{source.stem}-{hashlib.sha256(text.encode()).hexdigest()[:16]}.so"
    if path.exists():
        return path
    root.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=root, suffix=".so.part")
    os.close(fd)
    try:
        subprocess.run([cc, *flags, "-o", tmp, str(source)], check=True, capture_output=True,
                       text=True)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def load(source: Path, fallback: str) -> ctypes.CDLL | None:
    """The built library of ``source``, or None (with a warning naming ``fallback``, what runs
    instead) when there is no compiler or the build fails."""
    cc = compiler()
    if cc is None:
        warnings.warn(f"no C compiler (cc) found: {fallback}", stacklevel=3)
        return None
    try:
        return ctypes.CDLL(str(build(source, cc)))
    except (OSError, subprocess.CalledProcessError) as err:
        detail = getattr(err, "stderr", "") or err
        warnings.warn(f"{source.name} did not build ({detail}): {fallback}", stacklevel=3)
        return None
