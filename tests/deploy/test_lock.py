"""pyproject.toml's bounds and requirements/lock*.txt: every dependency locked, hashed, in bounds.

A failure here after a change of pyproject.toml usually means: run `make lock` and commit
requirements/.
"""

import pathlib
import re
import tomllib

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = pathlib.Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
LOCKS = {n: ROOT / "requirements" / n for n in ("lock.txt", "lock-dev.txt", "lock-runtime.txt")}
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)", re.MULTILINE)

# A release with a known vulnerability, for each bound raised past one: none may come back in
VULNERABLE = {
    "h11": ("0.15.0", "CVE-2025-43859, request smuggling"),
    "dnspython": ("2.6.0", "CVE-2023-29483, a forged UDP reply"),
    "aiohttp": ("3.14.2", "CVE-2026-69244"),
    "cryptography": ("46.0.5", "CVE-2026-34073"),
    "pyarrow": ("14.0.0", "CVE-2023-47248"),
    "jinja2": ("3.1.5", "CVE-2025-27516, a sandbox escape"),
}


def pins(lock: pathlib.Path) -> dict[str, str]:
    """Return the lock's pins: canonical name -> version."""
    return {canonicalize_name(n): v for n, v in PIN.findall(lock.read_text())}


def extra(name: str) -> list[Requirement]:
    """Return the requirements of one extra, as written."""
    return [Requirement(r) for r in PYPROJECT["optional-dependencies"][name]]


def requirements(*extras: str) -> list[Requirement]:
    """Return the runtime requirements and those of `extras`, the project's own extras expanded."""
    found = [Requirement(r) for r in PYPROJECT["dependencies"]]
    todo, seen = list(extras), set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for req in extra(name):
            if req.name == PYPROJECT["name"]:
                todo.extend(req.extras)
            else:
                found.append(req)
    return found


RUNTIME = [Requirement(r) for r in PYPROJECT["dependencies"]] + [
    r for name in ("collector", "parquet", "diagnostics", "lab") for r in extra(name)
]


@pytest.mark.parametrize("req", RUNTIME, ids=str)
def test_every_runtime_dependency_has_a_floor_and_an_upper_bound(req):
    operators = {spec.operator for spec in req.specifier}
    assert operators & {">=", ">", "==", "~="}, f"{req}: no floor"
    assert operators & {"<", "<=", "==", "~="}, f"{req}: no upper bound"


@pytest.mark.parametrize("name", sorted(VULNERABLE))
def test_no_bound_admits_a_version_with_a_known_vulnerability(name):
    version, why = VULNERABLE[name]
    (req,) = [r for r in requirements("dev", "lab") if canonicalize_name(r.name) == name]
    assert not req.specifier.contains(version, prereleases=True), f"{req} admits {version}: {why}"


@pytest.mark.parametrize(
    "lock, extras",
    [
        ("lock.txt", ("dev", "lab")),
        ("lock-dev.txt", ("dev",)),
        ("lock-runtime.txt", ("collector", "parquet")),
    ],
)
def test_the_lock_pins_every_requirement_within_its_bounds(lock, extras):
    pinned = pins(LOCKS[lock])
    for req in requirements(*extras):
        name = canonicalize_name(req.name)
        assert name in pinned, f"{req} is not in {lock}: run `make lock`"
        assert req.specifier.contains(Version(pinned[name]), prereleases=True), (
            f"{lock} pins {name}=={pinned[name]}, outside {req}: run `make lock`"
        )


@pytest.mark.parametrize("lock", sorted(LOCKS))
def test_every_pin_carries_its_hashes(lock):
    entries = re.split(r"\n(?=[A-Za-z0-9])", LOCKS[lock].read_text())
    entries = [e for e in entries if PIN.match(e)]
    assert len(entries) == len(pins(LOCKS[lock])) > 10
    for entry in entries:
        assert re.search(r"--hash=sha256:[0-9a-f]{64}", entry), entry.splitlines()[0]


def test_the_partial_locks_are_the_full_lock_resolution():
    full = pins(LOCKS["lock.txt"])
    for lock in ("lock-dev.txt", "lock-runtime.txt"):
        partial = pins(LOCKS[lock])
        assert {n: full.get(n) for n in partial} == partial, f"{lock} differs from lock.txt"
    # lock-dev.txt leaves out only what the lab needs (NetfilterQueue builds against apt headers)
    lab_only = set(full) - set(pins(LOCKS["lock-dev.txt"]))
    assert lab_only and lab_only >= {canonicalize_name(r.name) for r in extra("lab")}


def test_the_venv_is_installed_from_the_lock_alone():
    makefile = (ROOT / "Makefile").read_text()
    assert "pip install --quiet --require-hashes -r $(DEVLOCK)" in makefile
    assert "pip install --quiet --require-hashes -r $(LOCK)" in makefile
    assert "pip install --quiet --no-deps -e ." in makefile
    assert not re.search(r"pip install (?!.*--no-deps).*-e '?\.\[", makefile), "resolves again"
