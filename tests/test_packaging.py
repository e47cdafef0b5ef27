"""The package as users get it: a wheel that carries the bundled model and its assets, and a module
graph without import cycles."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest

from conftest import REPO

PACKAGE = REPO / "kwstream"


def test_a_wheel_installed_without_the_source_tree_spots_hey_and_stop_offline(tmp_path):
    wheels = tmp_path / "wheels"
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                            str(wheels), str(REPO)], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert build.returncode == 0, build.stderr
    [wheel] = wheels.glob("kwstream-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    # The dependencies come from the test environment's site-packages (a plain path: its .pth
    # files, the editable install's among them, are not read), kwstream itself only from the wheel.
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    install = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-compile", "-q",
                              str(wheel)], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert install.returncode == 0, install.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    where = subprocess.run([str(python), "-c", "import kwstream, kwstream.assets as a; print(kwstream.__file__); print(a.DEMO_AUDIO)"],
                           capture_output=True, text=True, cwd=elsewhere, env=env, timeout=120)
    assert where.returncode == 0, where.stderr
    package_file, demo = where.stdout.split()
    assert Path(package_file).is_relative_to(venv) and Path(demo).is_relative_to(venv) and Path(demo).is_file()
    listen = subprocess.run([str(venv / "bin" / "kwstream"), "listen", "--keywords", "hey,stop", "--file", demo, "--fast"],
                            capture_output=True, text=True, cwd=elsewhere, env=env, timeout=300)
    assert listen.returncode == 0, listen.stderr
    assert [line.split()[1] for line in listen.stdout.splitlines()] == ["hey", "stop"], listen.stdout + listen.stderr
    assert "bundled model" in listen.stderr


def _modules() -> dict[str, Path]:
    return {".".join(p.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__"): p for p in PACKAGE.rglob("*.py")}


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package's modules that ``name`` imports anywhere in its text (function-level imports too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}  # from package import module
    return {m for m in found if m in modules and m != name}


def test_no_import_cycles_in_the_package():
    modules = _modules()
    graph = {name: _imports(name, path, modules) for name, path in modules.items()}
    assert "kwstream.cli.dashboard" in graph and "kwstream.stream.pipeline" in graph
    cycles, state = [], {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append(trail[trail.index(nxt):] + [nxt] if nxt in trail else [node, nxt])
            elif nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


@pytest.mark.parametrize("layer,forbidden", [
    ("kwstream.stream", ("kwstream.cli", "kwstream.spotter", "kwstream.evaluation")),
    ("kwstream.model", ("kwstream.cli", "kwstream.spotter", "kwstream.stream", "kwstream.keywords", "kwstream.evaluation")),
    ("kwstream.keywords", ("kwstream.cli", "kwstream.spotter")),
    ("kwstream.evaluation", ("kwstream.cli", "kwstream.spotter")),
])
def test_library_layers_do_not_reach_up(layer, forbidden):
    modules = _modules()
    for name, path in modules.items():
        if name == layer or name.startswith(layer + "."):
            wrong = sorted(m for m in _imports(name, path, modules) if m.startswith(forbidden))
            assert not wrong, f"{name} imports {wrong}"


def test_library_code_never_prints():
    for name, path in _modules().items():
        if name.startswith("kwstream.cli"):
            continue
        calls = [n for n in ast.walk(ast.parse(path.read_text()))
                 if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "print"]
        assert not calls, f"{name} prints (line {calls[0].lineno}); return the text and let kwstream.cli print it"


DISTRIBUTION_OF_MODULE = {"webrtcvad": "webrtcvad-wheels", "huggingface_hub": "huggingface-hub"}
"""Import names whose distribution on PyPI is named otherwise."""
HEAVY = {"torch", "transformers", "onnx", "onnxscript", "matplotlib"}


def _requirement(text: str) -> str:
    return re.split(r"[<>=!~\[;\s]", text, maxsplit=1)[0].lower().replace("_", "-")


def _third_party_imports() -> set[str]:
    found = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names) - {"kwstream"}


def test_the_lean_install_leaves_torch_out_and_every_import_is_declared_where_the_error_says():
    from kwstream.extras import EXTRA_OF_MODULE

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    core = {_requirement(r) for r in project["dependencies"]}
    extras = {name: {_requirement(r) for r in found} for name, found in project["optional-dependencies"].items()}
    assert not core & HEAVY, "the lean install (pip install kwstream) must not pull these"
    for module in _third_party_imports() | set(EXTRA_OF_MODULE):
        distribution = DISTRIBUTION_OF_MODULE.get(module, module).replace("_", "-")
        extra = EXTRA_OF_MODULE.get(module)
        assert distribution in (extras[extra] if extra else core), f"{module}: declare it in {extra or 'dependencies'}"
    assert HEAVY <= set(EXTRA_OF_MODULE)
    optional = project["optional-dependencies"]

    def brings(extra: str) -> set[str]:
        """The distributions ``extra`` installs, through the extras it names too."""
        found = set()
        for requirement in optional[extra]:
            if requirement.startswith("kwstream["):
                found |= set().union(*map(brings, requirement[len("kwstream["):requirement.index("]")].split(",")))
            else:
                found.add(_requirement(requirement))
        return found

    assert HEAVY <= brings("test"), "`.[test]` (what .ci/setup installs) must bring everything"
