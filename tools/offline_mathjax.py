"""Sphinx extension: serve the local MathJax copy from ``_static/mathjax`` (offline math).

``make mathjax`` installs MathJax from the npm registry into the git-ignored ``.mathjax/static``;
``_config.yml`` points ``mathjax_path`` at ``mathjax/tex-mml-chtml.js`` (relative to ``_static``).
The folder is added here, when Sphinx starts, rather than under ``_static/``: Jupyter Book adds
every ``.js`` file it finds in ``_static`` to every page, which would load all of MathJax's
components at once. Without the copy the build stops, instead of publishing pages whose math
shows as raw LaTeX.
"""
from pathlib import Path

from sphinx.errors import ExtensionError

STATIC = Path(".mathjax") / "static"


def add_mathjax(app, config):
    static = Path(app.srcdir) / STATIC
    script = static / config.mathjax_path
    if "://" in config.mathjax_path or not script.is_file():
        raise ExtensionError(f"local MathJax not found at {script}: run `make mathjax` (the book "
                             "must render its math offline, so it does not fall back to a CDN)")
    config.html_static_path.append(str(static.resolve()))


def setup(app):
    app.connect("config-inited", add_mathjax)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
