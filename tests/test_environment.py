"""requirements.txt and environment.yml list the same packages and versions."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PIN = re.compile(r"^\s*(?:-\s+)?([A-Za-z0-9_.\-\[\]]+)==([^\s#]+)")


def pins(path):
    out = {}
    for line in path.read_text().splitlines():
        m = PIN.match(line)
        if m:
            out[m.group(1).lower()] = m.group(2)
    return out


def test_requirements_and_environment_agree():
    req, env = pins(ROOT / "requirements.txt"), pins(ROOT / "environment.yml")
    assert len(req) >= 10
    assert req == env


def test_torch_is_pinned_to_the_cpu_wheel_version():
    assert pins(ROOT / "requirements.txt")["torch"] == "2.13.0"


def test_jupyter_book_1():
    assert pins(ROOT / "requirements.txt")["jupyter-book"].startswith("1.")
