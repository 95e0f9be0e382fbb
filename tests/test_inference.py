"""One inference layer: every command reads its checkpoint once (`mtapp.inference.load`), and no
module imports a command module."""

import ast
from pathlib import Path

import pytest
import torch

import mtapp
from mtapp import evaluate, serve, translate

PACKAGE = Path(mtapp.__file__).parent


@pytest.fixture
def loads(monkeypatch):
    """Counts the checkpoint files read (torch.load), file by file."""
    counted: list[str] = []
    real = torch.load

    def counting(path, *args, **kwargs):
        counted.append(Path(path).name)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(torch, "load", counting)
    return counted


def test_each_command_reads_its_checkpoint_once(trained, tmp_path, monkeypatch, loads):
    tmp, run = trained
    source = tmp / "corpus" / "test.xx"
    assert translate.main(["--run", str(run), "--input", str(source), "--output", str(tmp_path / "out.txt")]) == 0
    assert loads == ["checkpoint_best.pt"]
    loads.clear()
    assert evaluate.main(["--run", str(run), "--split", "test", "--json", str(tmp_path / "scores.json")]) == 0
    assert loads == ["checkpoint_best.pt"]
    loads.clear()
    assert evaluate.main(["--run", str(run), "--split", "all", "--json", str(tmp_path / "all.json")]) == 0
    assert loads == ["checkpoint_best.pt"]
    loads.clear()
    served = []
    monkeypatch.setattr("uvicorn.run", lambda app, **kwargs: served.append(app))  # the port is never taken
    assert serve.main(["--run", str(run), "--device", "cpu"]) == 0
    assert loads == ["checkpoint_best.pt"] and served[0].state.service.about["source_language"] == "xx"


def command_modules() -> set[str]:
    """mtapp's commands: the modules run as `python -m mtapp.<verb>` (a __main__ block, or a
    package's __main__.py), by dotted name (the package itself is a library)."""
    found = set()
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(("mtapp", *path.relative_to(PACKAGE).with_suffix("").parts))
        if path.name == "__main__.py" or 'if __name__ == "__main__":' in path.read_text(encoding="utf-8"):
            found.add(name)
    return found


def test_no_module_imports_a_command_module():
    commands = command_modules()
    assert {"mtapp.translate", "mtapp.serve", "mtapp.evaluate", "mtapp.train", "mtapp.bench.__main__"} <= commands
    importers = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "__main__.py":  # a package's command dispatches to its own subcommands
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            importers += [f"{path.relative_to(PACKAGE)} imports {n}" for n in names if n in commands]
    assert importers == []
