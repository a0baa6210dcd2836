"""The install routes: the probe alone (the base install) needs none of the collector's stack, and
every third-party module the code imports is declared in pyproject.toml, in the right extra.

The imports are read from the source (every `import` statement, lazy ones too), and each module is
mapped to the distribution that provides it in this environment, so an undeclared import fails
here rather than on a volunteer's Raspberry Pi.
"""

from __future__ import annotations

import ast
import importlib.metadata
import pathlib
import subprocess
import sys
import sysconfig
import tomllib

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = pathlib.Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
STDLIB = set(sys.stdlib_module_names)
OURS = {"probe", "collector"}
# The collector's extras; the probe's modules may import none of them.
COLLECTOR_EXTRAS = ("collector", "parquet")


def declared(*extras: str) -> set[str]:
    reqs = [Requirement(r) for r in PROJECT["dependencies"]]
    for extra in extras:
        reqs += [Requirement(r) for r in PROJECT["optional-dependencies"][extra]]
    return {canonicalize_name(r.name) for r in reqs}


def imported_modules(package: str, leave_out: str | None = None) -> set[str]:
    """Return the top-level modules that ``package``'s source imports, lazily or not (but not
    those of its subpackage ``leave_out``)."""
    found: set[str] = set()
    for path in (ROOT / package).rglob("*.py"):
        if leave_out and (ROOT / package / leave_out) in path.parents:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found |= {a.name.partition(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.partition(".")[0])
    return found - STDLIB - OURS - {"__future__"}


def distributions(modules: set[str]) -> dict[str, str]:
    """Return module -> the distribution that provides it here (canonical name)."""
    provided = importlib.metadata.packages_distributions()
    out = {}
    for m in modules:
        assert m in provided, f"{m} is imported but no installed distribution provides it"
        out[m] = canonicalize_name(provided[m][0])
    return out


# The probe's extras it uses when they are installed (uvloop: the key loop, probe/cli.py); their
# modules are imported only inside a `try` that handles ImportError.
PROBE_OPTIONAL_EXTRAS = ("fast",)


def guarded_imports(package: str) -> set[str]:
    """Return the top-level modules that ``package`` imports only inside ``try: ... except
    ImportError`` (every import of them so guarded)."""
    guarded: set[str] = set()
    bare: set[str] = set()
    for path in (ROOT / package).rglob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        inside: set[int] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Try) and any(
                isinstance(h.type, ast.Name) and h.type.id == "ImportError" for h in node.handlers
            ):
                inside |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = {a.name.partition(".")[0] for a in node.names}
                (guarded if id(node) in inside else bare).update(names)
    return guarded - bare


def test_every_module_the_probe_imports_is_a_base_dependency() -> None:
    base = declared()
    optional = declared(*PROBE_OPTIONAL_EXTRAS) - base
    modules = imported_modules("probe", leave_out="diagnostics")
    undeclared = {m: d for m, d in distributions(modules).items() if d not in base}
    allowed = {
        m: d for m, d in undeclared.items() if d in optional and m in guarded_imports("probe")
    }
    assert undeclared == allowed, (
        f"the probe imports these outside its base dependencies: {undeclared}"
    )
    assert allowed == {"uvloop": "uvloop"}  # the one optional import, guarded (probe/cli.py)


def test_the_probes_diagnostics_need_only_their_extra() -> None:
    """probe/diagnostics imports scapy (lazily): the `diagnostics` extra, nothing else."""
    known = declared("diagnostics")
    modules = imported_modules("probe/diagnostics")
    undeclared = {m: d for m, d in distributions(modules).items() if d not in known}
    assert undeclared == {}, f"the diagnostics import these undeclared: {undeclared}"
    assert "scapy" in modules


def test_every_module_the_collector_imports_is_declared_in_its_extras() -> None:
    known = declared(*COLLECTOR_EXTRAS)
    modules = imported_modules("collector")
    undeclared = {m: d for m, d in distributions(modules).items() if d not in known}
    assert undeclared == {}, f"the collector imports these undeclared: {undeclared}"


def test_the_base_install_leaves_out_the_collectors_stack_and_scapy() -> None:
    heavy = {"sqlalchemy", "alembic", "psycopg", "pyarrow", "scapy", "msgspec"}
    assert declared() & heavy == set()
    assert declared("collector") >= {"sqlalchemy", "alembic", "psycopg"}


# Run in a fresh interpreter where the collector's extras cannot be imported, as on a machine
# that installed `surblocage` alone.
BLOCKER = """
import importlib.abc, sys
class Missing(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in {blocked!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None
sys.meta_path.insert(0, Missing())
"""
BLOCKED = {"sqlalchemy", "alembic", "psycopg", "prometheus_client", "maxminddb", "msgspec",
           "pyarrow", "scapy"}  # fmt: skip


def run_without_extras(code: str) -> subprocess.CompletedProcess[str]:
    program = BLOCKER.format(blocked=BLOCKED) + code
    return subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, cwd=ROOT
    )


def test_every_probe_module_imports_without_the_collectors_extras() -> None:
    done = run_without_extras(
        "import pkgutil, importlib, probe\n"
        "for m in pkgutil.walk_packages(probe.__path__, 'probe.'):\n"
        "    if not m.name.endswith('__main__'):\n"
        "        importlib.import_module(m.name)\n"
        "from probe.cli import main\n"
        "sys.exit(main(['check', '--help']))\n"
    )
    assert done.returncode == 0, done.stderr
    assert "usage: surblocage-probe check" in done.stdout


def test_the_collector_without_its_extra_says_what_to_install() -> None:
    done = run_without_extras("from collector.entry import main\nsys.exit(main(['--help']))\n")
    assert done.returncode == 1, done.stderr
    assert "pip install 'surblocage[collector]'" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_console_scripts_go_through_the_entry_points() -> None:
    scripts = PROJECT["scripts"]
    assert scripts["surblocage-collector"] == "collector.entry:main"
    installed = pathlib.Path(sysconfig.get_path("scripts")) / "surblocage-collector"
    if not installed.exists():
        pytest.skip("the project is not installed in this environment")
    done = subprocess.run([str(installed), "--version"], capture_output=True, text=True)
    assert done.returncode == 0 and "surblocage-collector" in done.stdout
