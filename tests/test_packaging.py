"""What the installed package offers: a console script for every `python -m mtapp.<command>`, each
the `main` that command runs; a wheel with every package and the shipped configs."""

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


def test_the_wheel_carries_every_package_and_the_shipped_configs(tmp_path):
    import shutil
    import subprocess
    import sys
    import zipfile

    from mtapp.config import shipped_configs

    source = tmp_path / "src"  # a copy, so that the build's own folders stay out of the checkout
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for folder in ("mtapp", "configs"):
        shutil.copytree(ROOT / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), "."]
    subprocess.run(build, cwd=source, check=True, capture_output=True)
    (wheel,) = tmp_path.glob("mtapp-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = {str(p.relative_to(ROOT)) for p in ROOT.glob("mtapp/**/*.py") if "__pycache__" not in p.parts}
    assert modules - names == set(), "pyproject.toml's [tool.setuptools] packages misses a package"
    assert {n for n in names if n.startswith("mtapp/configs/")} == {
        f"mtapp/configs/{c}.yaml" for c in shipped_configs()
    }


def test_the_python_floor_is_the_oldest_python_the_code_and_tests_run_on():
    """tomllib (tests, scripts) is 3.11's: the project says so instead of failing on 3.10."""
    assert tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"] == ">=3.11"


def test_a_command_without_its_extra_says_which_extra_to_install(tmp_path, monkeypatch):
    import subprocess
    import sys

    hide = (
        "import sys; sys.modules['fastapi'] = None; import runpy; runpy.run_module('mtapp.serve', run_name='__main__')"
    )
    served = subprocess.run([sys.executable, "-c", hide, "--run", str(tmp_path)], capture_output=True, text=True)
    assert served.returncode == 2 and "ModuleNotFoundError" not in served.stderr
    assert "python -m mtapp.serve needs fastapi, part of mtapp's 'serve' extra" in served.stderr
    assert "pip install 'mtapp[serve]'" in served.stderr
    from mtapp import ct2

    monkeypatch.setitem(sys.modules, "ctranslate2", None)
    with pytest.raises(
        ct2.ExportError, match=r"python -m mtapp.export needs ctranslate2.*pip install 'mtapp\[engines\]'"
    ):
        ct2.export(tmp_path / "missing.pt", tmp_path / "out")
