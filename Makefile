# make book   : create .venv if needed, build the whole book (profile: default) into _build/html
# make test   : create .venv if needed, install Debian's chromium if missing (the site test opens
#               the built book in it), run the test suite (chapters under the smoke profile)
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
PROFILE ?= default
JB_FLAGS := -W -n --keep-going

.PHONY: env browser book test bench clean

env: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

book: env
	RNNBOOK_PROFILE=$(PROFILE) $(BIN)/jupyter-book build . $(JB_FLAGS)
	@echo "Book built: _build/html/index.html"

# Headless browser for tests/test_site.py: Debian's package, installed once (root, or sudo).
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

browser: $(CHROMIUM)

$(CHROMIUM):
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends chromium

test: env browser
	$(BIN)/python -m pytest -n 2 --dist loadfile

bench: env
	for b in benchmarks/bench_*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf _build
