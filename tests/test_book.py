"""The whole book builds under the smoke profile with warnings as errors."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_book_builds_with_warnings_as_errors(tmp_path, smoke_env):
    jb = Path(sys.executable).parent / "jupyter-book"
    res = subprocess.run([str(jb), "build", str(ROOT), "--path-output", str(tmp_path), "-W", "-n",
                          "--keep-going"], env=smoke_env, capture_output=True, text=True)
    assert res.returncode == 0, (res.stdout + res.stderr)[-4000:]
    html = tmp_path / "_build" / "html"
    assert (html / "index.html").exists()
    page = (html / "book" / "01_tasks.html").read_text()
    assert page.count("<img") >= 3 and "Traceback" not in page
    if os.environ.get("RNNBOOK_KEEP_BUILD"):  # to inspect the smoke build by hand
        shutil.copytree(html, os.environ["RNNBOOK_KEEP_BUILD"], dirs_exist_ok=True)
