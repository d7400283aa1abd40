# make book   : create .venv if needed, train the populations (make train), build the whole book
#               (profile: default) into _build/html
# make train  : train the populations missing from the cache, a progress bar per task
# make test   : create .venv if needed, install Debian's chromium if missing (the site test opens
#               the built book in it), run the test suite (chapters under the smoke profile)
# make mathjax : a local MathJax (npm) for offline math; `book` and `test` install it first
# make lab     : JupyterLab on the project, chapters opening as notebooks and saving to their .md
# make run CHAPTER=01_tasks PARAMS="-p example_seed 3" : papermill run into runs/01_tasks/
# make normalise [PAGES=book/x.md] : rewrite pages in jupytext's own form (the round-trip test)
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
PROFILE ?= default
JB_FLAGS := -W -n --keep-going

.PHONY: env mathjax browser train book test bench clean lab run normalise

env: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

# Training runs in a step of its own, so its progress shows in the terminal; the book build
# then finds every population in the same cache and only loads.
train: env
	RNNBOOK_PROFILE=$(PROFILE) $(BIN)/python tools/train.py --profile $(PROFILE)

book: env mathjax train
	RNNBOOK_PROFILE=$(PROFILE) $(BIN)/jupyter-book build . $(JB_FLAGS)
	@echo "Book built: _build/html/index.html"

# MathJax for offline math, from the npm registry (Node's npm, no browser download): the book
# serves it from _static/mathjax (tools/offline_mathjax.py copies it there at build), so no page
# loads math from a CDN. Only the files tex-mml-chtml.js loads are kept.
MATHJAX_VERSION := 3.2.2
MATHJAX := .mathjax/static/mathjax

mathjax: $(MATHJAX)/tex-mml-chtml.js

$(MATHJAX)/tex-mml-chtml.js:
	npm install --prefix .mathjax --no-save --no-audit --no-fund --silent mathjax@$(MATHJAX_VERSION)
	rm -rf $(MATHJAX) && mkdir -p $(MATHJAX)
	cd .mathjax/node_modules/mathjax/es5 && cp -r tex-mml-chtml.js input output ui a11y adaptors sre \
	  $(CURDIR)/$(MATHJAX)/
	cp .mathjax/node_modules/mathjax/LICENSE $(MATHJAX)/

# Headless browser for tests/test_site.py: Debian's package, installed once (root, or sudo).
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

browser: $(CHROMIUM)

$(CHROMIUM):
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends chromium

test: env mathjax browser
	$(BIN)/python -m pytest -n 2 --dist loadfile

bench: env
	for b in benchmarks/bench_*.py; do $(BIN)/python $$b || exit 1; done

# JupyterLab is not needed to build or test the book, so it is installed on first use only.
LAB_SETTINGS := $(VENV)/share/jupyter/lab/settings/overrides.json

$(BIN)/jupyter-lab: requirements-lab.txt | env
	$(BIN)/python -m pip install --quiet -r requirements-lab.txt
	touch $@

$(LAB_SETTINGS): | $(BIN)/jupyter-lab
	mkdir -p $(dir $@)
	echo '{"@jupyterlab/docmanager-extension:plugin": {"defaultViewers": {"markdown": "Jupytext Notebook", "myst": "Jupytext Notebook"}}}' > $@

# As root (a container) Jupyter refuses to start without --allow-root.
LAB_FLAGS ?= $(shell [ "$$(id -u)" = 0 ] && echo --allow-root)

lab: $(BIN)/jupyter-lab $(LAB_SETTINGS)
	RNNBOOK_PROFILE=$(PROFILE) $(BIN)/jupyter lab --notebook-dir=. $(LAB_FLAGS)

CHAPTER ?= 01_tasks
PARAMS ?=
run: env
	RNNBOOK_PROFILE=$(PROFILE) $(BIN)/python tools/run_chapter.py $(CHAPTER) $(PARAMS)

PAGES ?= $(wildcard book/*.md)
normalise: env
	for f in $(PAGES); do \
	  $(BIN)/jupytext --to ipynb -q -o - $$f | $(BIN)/jupytext --from ipynb --to myst -q -o $$f - || exit 1; \
	done

clean:
	rm -rf _build
