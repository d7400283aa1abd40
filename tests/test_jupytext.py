"""Every page of the book is in the form jupytext itself writes, so that converting a chapter to a
notebook and back (README's round trip, or JupyterLab's save) leaves the file unchanged."""
import difflib
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted((ROOT / "book").glob("*.md"))


def round_trip(path: Path) -> str:
    """``path`` converted to .ipynb and back to MyST markdown by the jupytext command line."""
    jupytext = [sys.executable, "-m", "jupytext"]
    ipynb = subprocess.run([*jupytext, "--to", "ipynb", "-o", "-", str(path)],
                           check=True, capture_output=True, text=True).stdout
    return subprocess.run([*jupytext, "--from", "ipynb", "--to", "myst", "-o", "-"], input=ipynb,
                          check=True, capture_output=True, text=True, cwd=ROOT).stdout


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.stem)
def test_round_trip_is_the_identity(page):
    before = page.read_text()
    after = round_trip(page)
    diff = "".join(difflib.unified_diff(before.splitlines(True), after.splitlines(True),
                                        f"{page.name} (as committed)", f"{page.name} (round trip)"))
    assert after == before, (
        f"book/{page.name} is not in jupytext's own form, so converting it to a notebook and back "
        f"rewrites it. Normalise it with\n    make normalise PAGES=book/{page.name}\n"
        f"and commit the result. Difference:\n{diff[:3000]}")


def test_round_trip_detects_a_page_out_of_form(tmp_path):
    """A code cell without the blank line that jupytext writes after its options is caught."""
    text = PAGES[0].read_text()
    assert ":tags: [parameters]\n\n" in text
    page = tmp_path / "page.md"
    page.write_text(text.replace(":tags: [parameters]\n\n", ":tags: [parameters]\n", 1))
    assert round_trip(page) != page.read_text()
