"""The package as users get it: a wheel that carries the bundled model and its assets, and a module
graph without import cycles whose imports run down DESIGN.md's layers.

``python -c 'import sys; sys.path[:0] = ["tests"]; import test_packaging as t; print(*t.layer_violations(), sep=chr(10))'``
lists the imports against the layers (for a checkout elsewhere: ``t.layer_violations(Path(...))``)."""

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


@pytest.mark.slow
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


def _modules(root: Path = REPO) -> dict[str, Path]:
    return {".".join(p.relative_to(root).with_suffix("").parts).removesuffix(".__init__"): p
            for p in (root / "kwstream").rglob("*.py")}


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


LAYERS: tuple[tuple[str, ...], ...] = (
    ("kwstream.errors",),
    ("kwstream.extras", "kwstream.compiled", "kwstream.assets", "kwstream.processes"),
    ("kwstream.audio",),
    ("kwstream.model",),
    ("kwstream.keywords",),
    ("kwstream.stream",),
    ("kwstream.spotter", "kwstream.serve", "kwstream.evaluation", "kwstream.enroll", "kwstream.train",
     "kwstream.scan"),
    ("kwstream.cli",),
    ("kwstream", "kwstream.__main__"),
)
"""DESIGN.md's layers, bottom first: a module imports from its own package and from the layers below
it, never from a layer above nor from a package beside it in its own layer."""


def _package(module: str) -> str | None:
    """The package of LAYERS that holds ``module`` (``kwstream`` itself only for the package root)."""
    return max((p for layer in LAYERS for p in layer if module == p or (p != "kwstream" and module.startswith(p + "."))),
               key=len, default=None)


def layer_violations(root: Path = REPO) -> list[str]:
    """Every import in the package that runs against LAYERS, as ``importer -> imported``."""
    rank = {package: i for i, layer in enumerate(LAYERS) for package in layer}
    modules = _modules(root)
    wrong = []
    for name, path in sorted(modules.items()):
        for imported in sorted(_imports(name, path, modules)):
            here, there = _package(name), _package(imported)
            if here != there and rank[there] >= rank[here]:
                wrong.append(f"{name} -> {imported}")
    return wrong


def test_every_module_sits_in_a_layer():
    assert not [m for m in _modules() if _package(m) is None], "add the new package to LAYERS (and DESIGN.md)"


def test_imports_run_down_the_layers():
    wrong = layer_violations()
    assert not wrong, f"{len(wrong)} imports against the layers:\n" + "\n".join(wrong)


def test_keywords_hold_scorers_only_never_a_stream_nor_a_microphone():
    """Stricter than the layers (``audio.sources`` sits below ``keywords``): opening microphones and
    running pipelines is for the workflows above the stream (``kwstream.enroll``, ``kwstream.train``)."""
    forbidden = ("kwstream.stream", "kwstream.evaluation", "kwstream.audio.sources", "kwstream.enroll", "kwstream.train")
    modules = _modules()
    wrong = {name: found for name, path in modules.items() if name.startswith("kwstream.keywords")
             if (found := sorted(m for m in _imports(name, path, modules) if m.startswith(forbidden)))}
    assert not wrong, f"keywords imports {wrong}"


def test_library_code_never_prints():
    for name, path in _modules().items():
        if name.startswith("kwstream.cli"):
            continue
        calls = [n for n in ast.walk(ast.parse(path.read_text()))
                 if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "print"]
        assert not calls, f"{name} prints (line {calls[0].lineno}); return the text and let kwstream.cli print it"


DISTRIBUTION_OF_MODULE = {"webrtcvad": "webrtcvad-wheels", "huggingface_hub": "huggingface-hub", "hibari": "hibari-tts"}
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
