"""An observation: what one stored verdict contributes to the flags; the one list of its fields.

``Observation`` is the one definition of these fields. The columns that hold them
(``latest_looks`` and ``pending_pairs`` in collector/store/schema.py), the columns the judge reads
from ``measurements``, the builders of an observation from a row and the values written for one
are all derived from it. Pure (no SQL: the store maps each Python type to its SQL type), so that
the flag rules use it too; outside the judge package because the store may not import the judge.
A new field is added here and in a migration (collector/store/migrations/versions).
"""

from __future__ import annotations

import dataclasses
import datetime
import operator
import typing
from typing import Any

# Field metadata: the column of ``measurements`` (and attribute of a MeasurementRow) a field is
# read from, when it is not named alike.
MEASURED_AS = "measured_as"


@dataclasses.dataclass(frozen=True)
class Observation:
    """One stored verdict, as the flag rules weigh it."""

    record_id: str = dataclasses.field(metadata={MEASURED_AS: "id"})
    probe_id: str
    asn: int | None
    network: str | None
    service: str
    category: str
    started_at: datetime.datetime
    status: str
    method: str | None = None
    blockpage: str | None = None

    @property
    def network_key(self) -> tuple[int | None, str | None]:
        return self.asn, self.network


@dataclasses.dataclass(frozen=True)
class Field:
    """One field of an observation, as the columns that hold it are derived from it."""

    name: str
    python_type: type
    optional: bool  # may be null
    measured_as: str  # the measurements column it is read from


def _fields() -> tuple[Field, ...]:
    hints = typing.get_type_hints(Observation)
    found = []
    for f in dataclasses.fields(Observation):
        python_type, optional = _unwrapped(hints[f.name])
        found.append(Field(f.name, python_type, optional, f.metadata.get(MEASURED_AS, f.name)))
    return tuple(found)


def _unwrapped(hint: Any) -> tuple[type, bool]:
    """Return the type of a field's hint, and whether it may be null (``X | None``, the one
    union an observation field may be)."""
    args = typing.get_args(hint)
    if type(None) not in args:
        return hint, False
    [python_type] = [a for a in args if a is not type(None)]
    return python_type, True


FIELDS = _fields()
NAMES = tuple(f.name for f in FIELDS)


_FIELDS_OF_ROW = operator.attrgetter(*NAMES)  # one call for every field (the judge reads many)


def from_row(row: Any) -> Observation:
    """Return the observation a row holds in columns named as the fields (a latest look, a
    pending mark, or a record read through ``measured_as`` labels)."""
    return Observation(*_FIELDS_OF_ROW(row))


_NETWORK = NAMES.index("network")


def with_network(o: Observation, network: str) -> Observation:
    """Return ``o`` named as seen from ``network``: ``dataclasses.replace`` does the same, at
    several times the cost, and the judge relabels thousands of looks a pass."""
    fields = list(_FIELDS_OF_ROW(o))
    fields[_NETWORK] = network
    return Observation(*fields)


def of_measurement(row: Any) -> Observation:
    """Return what a stored record contributes (a MeasurementRow, or a measurements row)."""
    return Observation(*(getattr(row, f.measured_as) for f in FIELDS))


def values(o: Observation) -> dict[str, Any]:
    """Return the fields of ``o`` by name, as the columns that hold them take them."""
    return {name: getattr(o, name) for name in NAMES}
