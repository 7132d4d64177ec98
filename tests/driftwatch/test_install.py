"""`import driftwatch` and every subpackage work from anywhere: the repository root (where the
source folder shadows the installed package), another folder, the editable install, a built wheel."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: Import name prefix → source folder, as pyproject.toml's package-dir maps them.
FOLDERS = {
    "driftwatch": "driftwatch",
    "driftwatch.collectors": "collectors",
    "driftwatch.detectors": "detectors",
}


def source_packages() -> list[str]:
    """Every package (a folder with ``__init__.py``) in the source tree, by import name."""
    found = []
    for prefix, folder in FOLDERS.items():
        for init in sorted((ROOT / folder).rglob("__init__.py")):
            parts = init.parent.relative_to(ROOT / folder).parts
            found.append(".".join([prefix, *parts]))
    return sorted(found)


#: Imports every package, then prints where each came from, and whether the façade works.
PROBE = """
import importlib, json, sys
import driftwatch
names = json.loads(sys.argv[1])
files = {name: importlib.import_module(name).__file__ for name in names}
files["watch"] = driftwatch.watch.__module__
print(json.dumps(files))
"""


def probe(python: str, cwd: Path) -> dict[str, str]:
    """Imports every package with ``python`` in ``cwd``; their files by import name."""
    names = source_packages()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONSAFEPATH")}
    result = subprocess.run(
        [python, "-c", PROBE, json.dumps(names)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    files: dict[str, str] = json.loads(result.stdout)
    assert files.pop("watch") == "driftwatch.collectors._anthropic"
    assert sorted(files) == names
    return files


def test_every_package_is_listed_for_setuptools() -> None:
    """pyproject.toml's ``packages`` names every package of the source tree (the wheel test checks
    the result; this names the missing one)."""
    import tomllib

    listed = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    assert sorted(listed) == source_packages()


def test_from_the_repository_root() -> None:
    """The venv's python in the checkout (no -P): ./driftwatch is imported from source, and
    collectors/ and detectors/ are found beside it."""
    files = probe(sys.executable, ROOT)
    for name, file in files.items():
        prefix = max((p for p in FOLDERS if name == p or name.startswith(p + ".")), key=len)
        assert Path(file).is_relative_to(ROOT / FOLDERS[prefix]), (name, file)


def test_from_another_folder(tmp_path: Path) -> None:
    """Anywhere else the installed package is imported, collectors and detectors inside it."""
    files = probe(sys.executable, tmp_path)
    assert Path(files["driftwatch.collectors"]).parent.parent.name == "driftwatch"
    assert Path(files["driftwatch.detectors"]).parent.parent == Path(files["driftwatch"]).parent


def test_the_editable_install_runs_the_source(tmp_path: Path) -> None:
    """``make install``'s editable install (strict mode: a tree of links to the source files)."""
    direct_url = metadata.distribution("driftwatch-agents").read_text("direct_url.json")
    if not direct_url or not json.loads(direct_url).get("dir_info", {}).get("editable"):
        pytest.skip("driftwatch-agents is not installed in editable mode here")
    files = probe(sys.executable, tmp_path)
    assert Path(files["driftwatch._serve"]).resolve() == ROOT / "driftwatch" / "_serve" / "__init__.py"
    assert Path(files["driftwatch.collectors"]).resolve() == ROOT / "collectors" / "__init__.py"


def test_a_built_wheel_holds_and_imports_every_package(tmp_path: Path) -> None:
    """``pip wheel`` from a clean copy of the sources, installed into a new venv whose dependencies
    come from this one's site-packages (by a .pth line, so nothing is downloaded)."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, src / name)
    for folder in FOLDERS.values():  # not ROOT itself: a stale build/ there could leak into the wheel
        shutil.copytree(ROOT / folder, src / folder, ignore=shutil.ignore_patterns("__pycache__"))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet"]
    wheels = tmp_path / "wheels"
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(wheels), str(src)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = wheels.glob("driftwatch_agents-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
    packaged = sorted({n.rpartition("/")[0].replace("/", ".") for n in names if n.endswith("/__init__.py")})
    assert packaged == source_packages()
    assert "driftwatch/py.typed" in names and "driftwatch/detectors/thresholds.json" in names
    assert not [n for n in names if n.startswith(("collectors/", "detectors/", "tests/"))]

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = str(venv / "bin" / "python")
    subprocess.run([*pip, "--python", python, "install", "--no-deps", "--no-index", str(wheel)], check=True)
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    # This venv's site-packages as a plain path entry, after the new venv's own: its .pth files
    # (the editable install's) are not processed, so only the wheel provides driftwatch.
    Path(site, "deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    files = probe(python, tmp_path)
    for file in files.values():
        assert Path(file).is_relative_to(venv), file
    result = subprocess.run([str(venv / "bin" / "driftwatch"), "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.startswith("driftwatch "), result.stderr
