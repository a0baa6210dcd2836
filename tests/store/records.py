"""The record builders' former home: they are tests/support/records.py now.

Kept for tests/store/test_flags.py, which imports ``record_id`` from here.
"""

from tests.support.records import record_id as record_id
