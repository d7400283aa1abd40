"""Sphinx extension: offer each executed chapter for download as ``.ipynb``.

MyST-NB 1 writes every executed notebook to ``jupyter_execute/`` beside the HTML output but no
longer tells the theme about it, so sphinx-book-theme's download menu offers only the ``.md``
source. This copies the executed notebook (outputs included) next to the page's source under
``_sources/`` and sets the ``ipynb_source`` the theme's menu looks for; the link is a plain
relative file, so it works offline too.
"""
import shutil
from pathlib import Path


def add_notebook(app, pagename, templatename, context, doctree):
    executed = Path(app.outdir).parent / "jupyter_execute" / f"{pagename}.ipynb"
    if doctree is None or not executed.is_file():
        return
    target = Path(app.outdir) / "_sources" / f"{pagename}.ipynb"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(executed, target)
    context["ipynb_source"] = f"{pagename}.ipynb"


def setup(app):
    # Before sphinx-book-theme builds its header buttons (priority 501).
    app.connect("html-page-context", add_notebook, priority=400)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
