"""Migrations, schema checks, URLs and engine settings, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime
import multiprocessing
import pathlib
import socket

import alembic.autogenerate
import alembic.command
import alembic.runtime.migration
import pytest
import sqlalchemy as sa

from collector.store import (
    MeasurementQuery,
    SchemaMismatch,
    StoreUnavailable,
    migrate,
    open_store,
)
from collector.store.schema import metadata
from collector.store.versioning import alembic_config, head_revisions
from tests.support import records
from tests.support.postgres import reset_pg

TABLES = {
    "alembic_version",
    "measurements",
    "probes",
    "flags",
    "latest_looks",
    "service_addresses",
    "blocked_addresses",
    "pending_pairs",
    "collector_keys",
    "domains",
    "domain_addresses",
    "sweeps",
    "address_looks",
    "address_blocked_looks",
    "address_vantage",
    "address_flags",
    "blocked_looks",
    "signature_observations",
    "learned_signatures",
}
REVISIONS = ["0001", "0002", "0003", "0004", "0005", "0006", "0007", "0008", "0009", "0010"]
# Public addresses of watched services and of indexed domains (collateral damage, the census),
# never a submitter's address.
SERVICE_ADDRESS_COLUMNS = {
    ("service_addresses", "ip"),
    ("blocked_addresses", "ip"),
    ("domain_addresses", "ip"),
    ("address_vantage", "ip"),
    ("address_flags", "ip"),
    ("address_looks", "ip"),  # a swept address, as the sweep names it
    ("address_blocked_looks", "ip"),
}


def table_names(url: str) -> set[str]:
    with open_store(url) as store:
        return set(sa.inspect(store.engine).get_table_names())


def test_migrate_from_empty_creates_the_tables_and_reaches_head(db_url: str) -> None:
    assert migrate(db_url) == REVISIONS
    assert table_names(db_url) == TABLES
    with open_store(db_url) as store:
        store.check_schema()
        assert store.insert_batch([records.row(1)]).inserted == 1


def test_migrate_again_applies_nothing_and_keeps_the_data(db_url: str) -> None:
    migrate(db_url)
    with open_store(db_url) as store:
        store.insert_batch([records.row(1), records.row(2)])
    assert migrate(db_url) == []
    with open_store(db_url) as store:
        assert store.count_measurements(MeasurementQuery()) == 2


def test_migrated_schema_is_exactly_schema_py(db_url: str) -> None:
    migrate(db_url)
    with open_store(db_url) as store, store.engine.connect() as conn:
        context = alembic.runtime.migration.MigrationContext.configure(
            conn, opts={"compare_type": True}
        )
        assert alembic.autogenerate.compare_metadata(context, metadata) == []


def test_downgrade_to_base_removes_every_table(db_url: str) -> None:
    migrate(db_url)
    with open_store(db_url) as store, store.engine.connect() as conn:
        alembic.command.downgrade(alembic_config(conn), "base")
        conn.commit()
    assert table_names(db_url) <= {"alembic_version"}
    assert migrate(db_url) == REVISIONS


def test_no_column_can_hold_a_submitters_address() -> None:
    columns = {(table.name, c.name) for table in metadata.tables.values() for c in table.columns}
    addresses = {(t, name) for t, name in columns if "ip" in name.split("_") or "addr" in name}
    assert addresses == SERVICE_ADDRESS_COLUMNS
    names = {name for _, name in columns}
    assert "token_hash" in names and "token" not in names


def test_check_schema_on_an_empty_database_says_to_migrate(db_url: str) -> None:
    with open_store(db_url) as store, pytest.raises(SchemaMismatch) as caught:
        store.check_schema()
    assert "surblocage-collector migrate" in str(caught.value)


def test_check_schema_on_a_newer_database_says_so(db_url: str) -> None:
    migrate(db_url)
    with open_store(db_url) as store:
        with store.engine.begin() as conn:
            conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))
        with pytest.raises(SchemaMismatch, match="9999 is newer than this collector"):
            store.check_schema()


def test_head_is_revision_0010() -> None:
    assert head_revisions() == {"0010"}


def test_tokens_issued_before_expiry_existed_expire_one_default_ttl_after_the_upgrade(
    db_url: str,
) -> None:
    with open_store(db_url) as store:
        with store.engine.begin() as conn:
            alembic.command.upgrade(alembic_config(conn), "0005")
            conn.execute(
                sa.text("INSERT INTO probes (id, token_hash, created_at) VALUES ('p-1', 'h', :t)"),
                {"t": datetime.datetime(2026, 1, 1)},
            )
    assert migrate(db_url) == ["0006", "0007", "0008", "0009", "0010"]
    with open_store(db_url) as store:
        [probe] = store.list_probes()
    expected = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=30)
    assert probe.token_expires_at is not None
    assert abs(probe.token_expires_at - expected) < datetime.timedelta(minutes=5)


def test_a_store_on_an_unmigrated_database_is_unavailable_not_a_crash(db_url: str) -> None:
    with open_store(db_url) as store, pytest.raises(StoreUnavailable, match="measurements"):
        store.insert_batch([records.row(1)])


def test_two_processes_migrating_at_once_both_succeed(db_url: str) -> None:
    context = multiprocessing.get_context("spawn")
    with context.Pool(2) as pool:
        applied = pool.map(migrate, [db_url, db_url])
    assert sorted(applied) == [[], REVISIONS]
    assert table_names(db_url) == TABLES


@pytest.mark.parametrize(
    "url, why",
    [
        ("mysql://root@localhost/x", "expected sqlite:///PATH or postgresql://"),
        ("not a url", "expected sqlite:///PATH or postgresql://"),
        ("sqlite://", "sqlite needs a file path"),
        ("sqlite:///:memory:", "sqlite needs a file path"),
        ("postgresql://u:secret@127.0.0.1", "postgresql needs a database name"),
        ("postgresql+psycopg2://u@127.0.0.1/x", "expected sqlite:///PATH or postgresql://"),
    ],
)
def test_a_bad_url_is_a_value_error_naming_it(url: str, why: str) -> None:
    with pytest.raises(ValueError, match=why) as caught:
        open_store(url)
    assert "database url" in str(caught.value)
    assert "secret" not in str(caught.value)


def test_postgres_and_postgresql_urls_use_psycopg_3() -> None:
    for url in ("postgresql://u@127.0.0.1/x", "postgres://u@127.0.0.1/x"):
        with open_store(url) as store:
            assert store.engine.url.drivername == "postgresql+psycopg"


def free_loopback_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_postgresql_is_store_unavailable_without_the_password() -> None:
    url = f"postgresql://u:secret@127.0.0.1:{free_loopback_port()}/x?connect_timeout=2"
    with open_store(url) as store:
        with pytest.raises(StoreUnavailable) as caught:
            store.check_schema()
        assert "secret" not in str(caught.value)
        with pytest.raises(StoreUnavailable):
            store.insert_batch([records.row(1)])
        with pytest.raises(StoreUnavailable):
            store.count_measurements(MeasurementQuery())


def test_sqlite_file_and_directory_are_created_wal_full_sync(
    tmp_path: pathlib.Path,
) -> None:
    path = tmp_path / "deep" / "er" / "collector.db"
    migrate(f"sqlite:///{path}")
    assert path.exists()
    with open_store(f"sqlite:///{path}") as store, store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30_000


def test_sqlite_in_a_directory_that_cannot_exist_is_unavailable(tmp_path: pathlib.Path) -> None:
    (tmp_path / "afile").write_text("")
    with pytest.raises(StoreUnavailable, match="database directory"):
        open_store(f"sqlite:///{tmp_path}/afile/sub/collector.db")


@pytest.mark.postgres
def test_a_store_outlives_its_postgresql_connections_being_killed(pg_database: str) -> None:
    reset_pg(pg_database)
    migrate(pg_database)
    with open_store(pg_database) as store:
        store.insert_batch([records.row(1)])
        with store.engine.connect() as conn:
            mine = conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
        with open_store(pg_database) as admin, admin.engine.begin() as conn:
            killed = conn.execute(
                sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": mine}
            ).scalar_one()
        assert killed is True
        assert store.count_measurements(MeasurementQuery()) == 1
        assert store.insert_batch([records.row(2)]).inserted == 1
