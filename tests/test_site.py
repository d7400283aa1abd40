"""The built book as a reader sees it: every page opened in headless Chromium, with no network.

The pages are served over HTTP from the smoke build and loaded, one iframe each, into a checker
page on the same origin; once the page and all its frames have loaded and MathJax has typeset
them, its script records per page the images (``naturalWidth`` and width on the page), the
links, the text outside code blocks, the tables wider than the article that do not scroll in a
box of their own, the resources fetched from other hosts, and whether the text shows a Python
traceback. Chromium's ``--dump-dom`` hands that record back. Python then checks the image files
themselves (a figure of a single colour is empty), resolves every internal link, fragment
included, and looks for raw LaTeX delimiters (math MathJax did not render). Every host but the
local server resolves to nothing, as for a reader offline. Chromium is Debian's package
(``make test`` installs it); no browser is downloaded.
"""
import functools
import html as htmlmod
import http.server
import json
import re
import subprocess
import threading
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import numpy as np
import pytest
from matplotlib import image as mpimg

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--virtual-time-budget=20000",
         # Offline: a page that needs the network (math from a CDN, say) fails here as it would
         # for a reader without one.
         "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"]
SKIP_DIRS = ("_static", "_sources", "_images")
TRACEBACK = re.compile(r"Traceback \(most recent call last\)")
# Delimiters MathJax removes when it renders: left in the text, the math is shown raw.
RAW_LATEX = re.compile(r"\\\(|\\\)|\\\[|\\\]|\$\$|\\begin\{|\\frac\{")
MIN_FIGURE_PX = 320  # a figure narrower than this on a 1200 px wide page is unreadable

CHECKER = """<!DOCTYPE html><html><body><pre id="out">pending</pre>%s<script>
// The window's load event waits for every iframe and the images in it, so naturalWidth is final.
// MathJax typesets after load: wait for it (a page without MathJax has nothing to wait for).
function typeset(win) {
  const mj = win.MathJax;
  return mj && mj.startup && mj.startup.promise ? mj.startup.promise.catch(() => null) : null;
}
// The text a reader sees outside code blocks (code may show backslashes on purpose).
function prose(doc) {
  const body = doc.body.cloneNode(true);
  body.querySelectorAll("pre, code, script, style, mjx-assistive-mml").forEach(e => e.remove());
  return body.textContent;
}
// Tables wider than the article that no box of their own lets the reader scroll.
function clippedTables(doc, win) {
  const article = doc.querySelector("article, main") || doc.body;
  const room = article.getBoundingClientRect().width;
  const out = [];
  for (const table of doc.querySelectorAll("table")) {
    const wide = table.getBoundingClientRect().width;
    if (wide <= room + 1) continue;
    let box = table.parentElement, scrolls = false;
    for (; box && box !== article.parentElement; box = box.parentElement) {
      const o = win.getComputedStyle(box).overflowX;
      if ((o === "auto" || o === "scroll") && box.clientWidth <= room + 1) { scrolls = true; break; }
    }
    if (!scrolls) out.push(`${Math.round(wide)} px in ${Math.round(room)} px: ` +
                           (table.innerText || "").trim().slice(0, 60).replace(/\\s+/g, " "));
  }
  return out;
}
window.addEventListener("load", async () => {
  const frames = Array.from(document.querySelectorAll("iframe"));
  await Promise.all(frames.map(f => f.contentWindow && typeset(f.contentWindow)));
  const out = {};
  for (const frame of frames) {
    const doc = frame.contentDocument, win = frame.contentWindow, page = frame.dataset.page;
    if (!doc || !doc.body) { out[page] = {failed: "no document"}; continue; }
    out[page] = {
      images: Array.from(doc.images).map(i => ({
        src: i.currentSrc || i.src, width: i.naturalWidth,
        shown: Math.round(i.getBoundingClientRect().width),
        figure: !!i.closest("figure, .cell_output")})),
      links: Array.from(doc.querySelectorAll("a[href]")).map(a => a.href),
      errors: doc.querySelectorAll(".traceback, .output.error").length,
      text: doc.body.innerText,
      prose: prose(doc),
      tables: clippedTables(doc, win),
      remote: win.performance.getEntriesByType("resource").map(r => r.name)
        .filter(n => !n.startsWith(win.location.origin) && !n.startsWith("data:"))};
  }
  document.getElementById("out").textContent = JSON.stringify(out);
});
</script></body></html>"""
FRAME = '<iframe data-page="{0}" src="/{0}" style="width:1200px;height:900px"></iframe>'


def require_chromium():
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} not found: this test needs Debian's chromium. Install it with "
                    "`apt-get update && apt-get install -y chromium` (`make test` does this).")


def pages_of(root: Path) -> list[str]:
    """Relative paths of every HTML page of a built site."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*.html")
                  if not set(p.relative_to(root).parts) & set(SKIP_DIRS))


class _Handler(http.server.SimpleHTTPRequestHandler):
    checker = b""

    def do_GET(self):
        if self.path.startswith("/__checker__"):
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(self.checker)
        else:
            super().do_GET()

    def log_message(self, *args):  # keep pytest's output clean
        pass


def browse(root: Path, pages: list[str], profile: Path) -> dict:
    """Open ``pages`` of the site in ``root`` in headless Chromium; what each page showed."""
    frames = "".join(FRAME.format(htmlmod.escape(p)) for p in pages)
    handler = type("H", (_Handler,), {"checker": (CHECKER % frames).encode()})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             functools.partial(handler, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/__checker__.html"
        res = subprocess.run([str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}", "--dump-dom",
                              url], capture_output=True, text=True, timeout=300)
    finally:
        server.shutdown()
    found = re.search(r'<pre id="out">(.*?)</pre>', res.stdout, re.S)
    assert found and found.group(1) != "pending", f"the checker page did not finish:\n{res.stderr[-2000:]}"
    return json.loads(htmlmod.unescape(found.group(1)))


class _Ids(HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids = set()

    def handle_starttag(self, tag, attrs):
        self.ids.update(v for k, v in attrs if k in ("id", "name") and v)


@functools.lru_cache(maxsize=None)
def anchors(path: Path) -> frozenset:
    parser = _Ids()
    parser.feed(path.read_text(errors="replace"))
    return frozenset(parser.ids)


def local_file(root: Path, url: str) -> Path | None:
    """The file an URL of the local server points to (None for other sites)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or parts.hostname != "127.0.0.1":
        return None
    path = unquote(parts.path).lstrip("/")
    return root / (path + "index.html" if path.endswith("/") or not path else path)


def empty_image(path: Path) -> bool:
    """True for an image of a single colour (a blank figure)."""
    if path.suffix.lower() not in (".png", ".jpg", ".jpeg"):
        return path.stat().st_size == 0
    pixels = mpimg.imread(path)
    return float(np.ptp(pixels.reshape(-1, pixels.shape[-1]) if pixels.ndim == 3 else pixels)) == 0


def outside_book(url: str) -> bool:
    """A link to a file on the writer's machine: ``file:`` or another local server."""
    parts = urlsplit(url)
    return parts.scheme == "file" or (parts.scheme in ("http", "https")
                                      and parts.hostname in ("localhost", "0.0.0.0"))


def problems(root: Path, report: dict) -> list[str]:
    """Every defect a reader would meet, as messages: missing image, empty or too narrow figure,
    broken internal link, link to a file outside the book, raw LaTeX, table wider than its box,
    a resource fetched from the network, traceback."""
    out = []
    for page, seen in report.items():
        if "failed" in seen:
            out.append(f"{page}: could not be inspected ({seen['failed']})")
            continue
        for img in seen["images"]:
            f = local_file(root, img["src"])
            if img["width"] == 0 or (f is not None and not f.exists()):
                out.append(f"{page}: image does not load: {img['src']}")
            elif f is not None and empty_image(f):
                out.append(f"{page}: empty figure (one colour): {img['src']}")
            elif img["figure"] and img["shown"] < MIN_FIGURE_PX:
                out.append(f"{page}: figure shown {img['shown']} px wide (< {MIN_FIGURE_PX}): "
                           f"{img['src']}")
        for raw in sorted(set(RAW_LATEX.findall(seen["prose"]))):
            out.append(f"{page}: raw LaTeX in the text (math not rendered): {raw}")
        for table in seen["tables"]:
            out.append(f"{page}: table wider than its container, not scrollable: {table}")
        for url in seen["remote"]:
            out.append(f"{page}: loads from the network: {url}")
        for href in seen["links"]:
            if outside_book(href):
                out.append(f"{page}: link to a file outside the book: {href}")
                continue
            f = local_file(root, href)
            frag = urlsplit(href).fragment
            if f is None:
                continue
            if not f.exists():
                out.append(f"{page}: broken link {href}")
            elif frag and f.suffix == ".html" and unquote(frag) not in anchors(f):
                out.append(f"{page}: link to a missing anchor {href}")
        if seen["errors"] or TRACEBACK.search(seen["text"]):
            out.append(f"{page}: shows a Python traceback or error output")
    return out


WIDE_TABLE = "<table><tr>" + "<td>0.123456789</td>" * 40 + "</tr></table>"


def test_checker_catches_every_kind_of_problem(tmp_path):
    """A small site with one of each defect, each on a planted page: the checker must report
    them all, and nothing on the pages that do the same things right."""
    require_chromium()
    site = tmp_path / "site"
    site.mkdir()
    blank = np.ones((20, 30, 3))
    mpimg.imsave(site / "blank.png", blank)
    blank[5:15, 5:25] = 0
    mpimg.imsave(site / "ok.png", blank)
    page = '<html><head><title>t</title></head><body><article style="width:600px">{}</article></body></html>'
    (site / "index.html").write_text(page.format(
        '<h1 id="top">ok</h1>'
        '<img src="ok.png"><img src="missing.png"><img src="blank.png">'
        '<a href="other.html#top">fine</a><a href="gone.html">gone</a>'
        '<a href="other.html#nowhere">no anchor</a><a href="https://example.org/">ext</a>'))
    (site / "other.html").write_text(
        '<html><body><h1 id="top">x</h1><pre>Traceback (most recent call last):\n'
        '  File "x.py"\nValueError: boom</pre><a href="index.html">back</a></body></html>')
    (site / "raw_math.html").write_text(page.format(
        r"<p>The distance \(1 - |A \cap B|\) was meant to render.</p>"
        r"<pre>code may show \(x\) on purpose</pre>"))
    (site / "wide_table.html").write_text(page.format(
        WIDE_TABLE + '<div style="overflow-x:auto">' + WIDE_TABLE + "</div>"))
    (site / "small_figure.html").write_text(page.format(
        '<figure><img src="ok.png" style="width:120px"></figure>'
        '<figure><img src="ok.png" style="width:500px"></figure>'))
    (site / "outside_link.html").write_text(page.format(
        '<a href="file:///work/notes/PAPER.md">notes</a><a href="http://localhost:8000/x">dev</a>'))
    (site / "remote.html").write_text(page.format(
        '<script src="https://cdn.example.org/mathjax.js"></script><p>ok</p>'))
    found = problems(site, browse(site, pages_of(site), tmp_path / "profile"))
    wide = [m for m in found if m.startswith("wide_table.html")]
    assert len(wide) == 1 and "table wider than its container, not scrollable: " in wide[0], found
    assert sorted(m for m in found if m not in wide) == sorted([
        "index.html: image does not load: " + _url(found, "missing.png"),
        "index.html: empty figure (one colour): " + _url(found, "blank.png"),
        "index.html: broken link " + _url(found, "gone.html"),
        "index.html: link to a missing anchor " + _url(found, "other.html#nowhere"),
        "other.html: shows a Python traceback or error output",
        "raw_math.html: raw LaTeX in the text (math not rendered): \\(",
        "raw_math.html: raw LaTeX in the text (math not rendered): \\)",
        f"small_figure.html: figure shown 120 px wide (< {MIN_FIGURE_PX}): "
        + _url(found, "ok.png"),
        "outside_link.html: link to a file outside the book: file:///work/notes/PAPER.md",
        "outside_link.html: link to a file outside the book: http://localhost:8000/x",
        "remote.html: loads from the network: https://cdn.example.org/mathjax.js"])


def _url(messages, suffix):
    """The full URL ending in ``suffix`` among the messages (the server's port varies)."""
    return next(m.split()[-1] for m in messages if m.endswith("/" + suffix)
                and m.split()[-1].startswith("http://127.0.0.1"))


def test_every_page_of_the_built_book_renders_cleanly(smoke_book, tmp_path):
    require_chromium()
    root = smoke_book.html  # whether the build passed is test_book's business
    assert (root / "index.html").exists(), smoke_book.log
    pages = pages_of(root)
    assert "index.html" in pages and any(p.startswith("book/") for p in pages)
    report = browse(root, pages, tmp_path / "profile")
    assert set(report) == set(pages)
    assert sum(len(r.get("images", [])) for r in report.values()) >= 3
    found = problems(root, report)
    assert not found, "\n".join(found)
