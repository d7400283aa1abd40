"""Run one chapter through papermill and keep the executed notebook and its figures.

    python tools/run_chapter.py 01_tasks -p profile smoke -p example_seed 3 [--out runs]

writes ``runs/01_tasks/01_tasks.ipynb`` (the executed notebook, parameters injected) and
``runs/01_tasks/fig-*.png`` (every figure, named by its label where the cell has one). Nothing is
written into ``book/``: Jupyter Book refuses an ``.ipynb`` beside a chapter's ``.md``. ``make run``
calls this with ``CHAPTER=`` and ``PARAMS=``.
"""
from __future__ import annotations

import argparse
import base64
import subprocess
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]


def chapter_path(name: str) -> Path:
    """``01_tasks``, ``01_tasks.md`` or ``book/01_tasks.md`` → the chapter's source file."""
    path = ROOT / "book" / (Path(name).stem + ".md")
    if not path.exists():
        known = sorted(p.stem for p in (ROOT / "book").glob("*.md"))
        raise SystemExit(f"chapter={name!r} is not a chapter of the book; choose one of {known}")
    return path


def save_figures(notebook: Path, folder: Path) -> list[Path]:
    """Write every PNG output of ``notebook`` to ``folder``; return the paths written."""
    nb = nbformat.read(notebook, as_version=4)
    written = []
    for i, cell in enumerate(nb.cells):
        label = cell.metadata.get("mystnb", {}).get("figure", {}).get("name", f"cell{i:02d}")
        pngs = [o["data"]["image/png"] for o in cell.get("outputs", []) if "image/png" in o.get("data", {})]
        for j, png in enumerate(pngs):
            path = folder / (f"{label}.png" if len(pngs) == 1 else f"{label}-{j + 1}.png")
            path.write_bytes(base64.b64decode(png))
            written.append(path)
    return written


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("chapter")
    ap.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"))
    ap.add_argument("--out", default=str(ROOT / "runs"), help="output folder (default: runs/)")
    args = ap.parse_args(argv)
    src = chapter_path(args.chapter)
    folder = Path(args.out).resolve() / src.stem
    if folder == (ROOT / "book").resolve() or (ROOT / "book").resolve() in folder.parents:
        raise SystemExit(f"--out={args.out!r} is inside book/; choose a folder outside it")
    folder.mkdir(parents=True, exist_ok=True)
    source_nb, executed = folder / f"{src.stem}.source.ipynb", folder / f"{src.stem}.ipynb"
    subprocess.run([sys.executable, "-m", "jupytext", "--to", "ipynb", "-q", "-o", str(source_nb), str(src)],
                   check=True)
    params = [a for name, value in args.parameter for a in ("-p", name, value)]
    res = subprocess.run([sys.executable, "-m", "papermill", str(source_nb), str(executed),
                          "--cwd", str(ROOT / "book"), "-k", "python3", *params])
    source_nb.unlink()
    if res.returncode:
        print(f"chapter {src.stem} failed; the partly executed notebook is {executed}", file=sys.stderr)
        return res.returncode
    figures = save_figures(executed, folder)
    print(f"executed notebook: {executed}\nfigures: {len(figures)} PNG files in {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
