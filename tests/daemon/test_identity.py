"""The state dir: identity kept 0600 and written atomically; one `run` per state dir."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from probe.daemon import identity


def test_identity_round_trip_is_private(tmp_path: Path) -> None:
    state = tmp_path / "state"
    saved = identity.save_identity(state, "p-1", "s3cret", "http://127.0.0.1:1/")
    assert identity.load_identity(state) == saved
    assert saved.collector == "http://127.0.0.1:1"
    assert stat.S_IMODE((state / identity.IDENTITY_FILE).stat().st_mode) == 0o600
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert sorted(p.name for p in state.iterdir()) == [identity.IDENTITY_FILE]  # no temp left


def test_an_identity_serves_only_its_collector(tmp_path: Path) -> None:
    saved = identity.save_identity(tmp_path, "p-1", "t", "http://a.example/")
    assert saved.serves("http://a.example")
    assert not saved.serves("http://b.example")
    assert not saved.serves(None)


def test_no_identity_before_registration(tmp_path: Path) -> None:
    assert identity.load_identity(tmp_path) is None


@pytest.mark.parametrize(
    ("content", "why"),
    [("{", "not valid JSON"), ('{"probe_id": "p"}', "'token'"), ('{"probe_id": 3}', "probe_id")],
)
def test_a_damaged_identity_is_named(tmp_path: Path, content: str, why: str) -> None:
    (tmp_path / identity.IDENTITY_FILE).write_text(content)
    with pytest.raises(identity.StateError) as e:
        identity.load_identity(tmp_path)
    assert str(e.value).startswith(str(tmp_path / identity.IDENTITY_FILE))
    assert why in str(e.value)


def test_a_failed_write_keeps_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "f.json"
    identity.write_private(path, b"old")
    with pytest.raises(TypeError):
        identity.write_private(path, "not bytes")  # type: ignore[arg-type]
    assert path.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.json"]


def test_one_run_per_state_dir(tmp_path: Path) -> None:
    fd = identity.lock_state_dir(tmp_path)
    try:
        with pytest.raises(identity.StateError, match="another surblocage-probe run"):
            identity.lock_state_dir(tmp_path)
    finally:
        os.close(fd)
    os.close(identity.lock_state_dir(tmp_path))  # free again once the holder is gone
