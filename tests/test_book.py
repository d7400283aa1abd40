"""The whole book builds under the smoke profile with warnings as errors."""
import os
import shutil


def test_book_builds_with_warnings_as_errors(smoke_book):
    assert smoke_book.returncode == 0, smoke_book.log
    html = smoke_book.html
    assert (html / "index.html").exists()
    page = (html / "book" / "01_tasks.html").read_text()
    assert page.count("<img") >= 3 and "Traceback" not in page
    if os.environ.get("RNNBOOK_KEEP_BUILD"):  # to inspect the smoke build by hand
        shutil.copytree(html, os.environ["RNNBOOK_KEEP_BUILD"], dirs_exist_ok=True)
