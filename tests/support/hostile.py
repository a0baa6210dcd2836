"""Hypothesis strategies of hostile input: any JSON or YAML value, and valid documents with one
part replaced by anything."""

from __future__ import annotations

import pathlib
import tempfile
from collections.abc import Callable
from typing import Any

import yaml
from hypothesis import strategies as st

# bounded, so that a property runs a few hundred examples in seconds
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    | st.sampled_from(
        ["", "0", "127.0.0.1", "::1", "NXDOMAIN", "http://x/", "2026-03-01T00:00:00Z"]
    )
)
JSON = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
# what YAML adds to JSON: floats past JSON (nan, inf), dates are left out (the loaders see text)
YAML = JSON | st.floats() | st.lists(st.floats(), max_size=3)


@st.composite
def mutated(draw: st.DrawFn, value: Any, anything: st.SearchStrategy[Any] = JSON) -> Any:
    """``value`` with one part, at a depth drawn, replaced by ``anything`` or removed."""
    if isinstance(value, dict) and value and draw(st.booleans()):
        key = draw(st.sampled_from(sorted(value, key=str)))
        if draw(st.integers(0, 4)) == 0:
            return {k: v for k, v in value.items() if k != key}
        return {**value, key: draw(mutated(value[key], anything))}
    if isinstance(value, list) and value and draw(st.booleans()):
        i = draw(st.integers(0, len(value) - 1))
        return [*value[:i], draw(mutated(value[i], anything)), *value[i + 1 :]]
    return draw(_like(value) | anything)


def _like(value: Any) -> st.SearchStrategy[Any]:
    """A value of the same type as ``value``: the mutations most likely to pass the types."""
    if isinstance(value, bool):
        return st.booleans()
    if isinstance(value, int):
        return st.integers(-(2**40), 2**40)
    if isinstance(value, float):
        return st.floats(allow_nan=False, allow_infinity=False)
    if isinstance(value, str):
        return st.text(max_size=30) | st.just(value + "x") | st.just(value[:1])
    return st.nothing()


def loaded_or_refused(
    data: Any, load: Callable[[pathlib.Path], Any], error: type[Exception], suffix: str = ".yaml"
) -> Any:
    """``load`` of a file holding ``data`` (as YAML, or as is when it is text): its result, or
    None when it raised ``error`` naming the file; any other exception fails the property."""
    handle = tempfile.NamedTemporaryFile("w", suffix=suffix, delete=False, encoding="utf-8")
    with handle:
        handle.write(data if isinstance(data, str) else yaml.safe_dump(data))
    path = pathlib.Path(handle.name)
    try:
        return load(path)
    except error as e:
        assert path.name in str(e)
        return None
    finally:
        path.unlink()
