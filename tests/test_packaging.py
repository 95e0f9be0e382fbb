"""What the installed package offers: a console script for every `python -m mtapp.<command>`, each
the `main` that command runs. (The wheel's contents are checked by hand: see pyproject.toml.)"""

import importlib
import importlib.util
import inspect
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).parent.parent
GUARD = 'if __name__ == "__main__":'
SCRIPTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]


def command_module(name: str) -> str:
    """The module `python -m mtapp.<name>` runs: the module itself, or a package's __main__."""
    spec = importlib.util.find_spec(f"mtapp.{name}")
    assert spec is not None, f"no module mtapp.{name}"
    return f"mtapp.{name}.__main__" if spec.submodule_search_locations else f"mtapp.{name}"


def commands() -> set[str]:
    """The `python -m mtapp.<name>` commands: top-level modules and packages that run as a program."""
    runnable = [p for p in [*ROOT.glob("mtapp/*.py"), *ROOT.glob("mtapp/*/__main__.py")] if GUARD in p.read_text()]
    return {p.parent.name if p.name == "__main__.py" else p.stem for p in runnable}


def test_every_command_has_a_console_script():
    assert sorted(SCRIPTS) == sorted(f"mtapp-{name}" for name in commands())
    assert {"mtapp-train", "mtapp-translate", "mtapp-report", "mtapp-data", "mtapp-bench"} <= set(SCRIPTS)


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_each_console_script_is_the_main_its_command_runs(script):
    module, _, function = SCRIPTS[script].partition(":")
    assert module == command_module(script.removeprefix("mtapp-")) and function == "main"
    main = getattr(importlib.import_module(module), function)
    assert callable(main)
    argv = inspect.signature(main).parameters["argv"]  # main(argv=None) -> int: sys.exit(main()) semantics
    assert argv.default is None and inspect.signature(main).return_annotation in (int, "int")
