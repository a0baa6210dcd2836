"""Reading lists of domains: CSV and plain, gzip by content, bad lines skipped and numbered."""

from __future__ import annotations

import gzip
import io

import pytest

from collector.census import names


def read_all(data: bytes, chunk: int = names.CHUNK) -> tuple[list[names.Entry], names.Tally]:
    tally = names.Tally()
    entries = [e for part in names.read(io.BytesIO(data), tally, chunk) for e in part]
    return entries, tally


def test_tranco_csv_with_header_keeps_ranks() -> None:
    entries, tally = read_all(
        "rank,domain\n1,google.com\n2,Facebook.COM.\r\n3,bücher.de\n".encode()
    )
    assert entries == [("google.com", 1), ("facebook.com", 2), ("xn--bcher-kva.de", 3)]
    assert (tally.lines, tally.skipped) == (4, 0)


def test_plain_list_with_comments_and_blanks_has_no_ranks() -> None:
    entries, tally = read_all(
        b"# blocked sites\n\nexample.org\n  # indented comment\nwww.example.net\n"
    )
    assert entries == [("example.org", None), ("www.example.net", None)]
    assert tally.skipped == 0


def test_gzip_is_told_by_content() -> None:
    entries, _ = read_all(gzip.compress(b"1,example.com\n2,example.org\n"))
    assert entries == [("example.com", 1), ("example.org", 2)]


def test_a_byte_order_mark_on_the_first_line_is_not_a_fault() -> None:
    entries, tally = read_all("\ufeff1,example.com\n".encode())
    assert entries == [("example.com", 1)] and tally.skipped == 0


def test_bad_lines_are_skipped_and_counted_with_number_and_why() -> None:
    data = b"\n".join(
        [
            b"1,example.com",
            b"2,192.0.2.1",  # an IP address
            b"3,*.example.com",
            b"4,_dmarc.example.com",
            b"5,exa mple.com",
            b"x,example.org",  # a rank that is not a number, past line 1
            b"7,-bad.example",
            b"8," + b"a" * 64 + b".com",
            b"9,2001:db8::1",
            b"10,\xff\xfe.com",
            b"11,a..b",
            b"12,ok.example",
        ]
    )
    entries, tally = read_all(data)
    assert entries == [("example.com", 1), ("ok.example", 12)]
    assert tally.skipped == 10
    assert [s.line for s in tally.first] == [2, 3, 4, 5, 6, 7, 8, 9, 10, 11]
    why = {s.line: s.why for s in tally.first}
    assert why[2] == why[9] == "an IP address, not a name"
    assert "'*'" in why[3] and "'_'" in why[4] and "' '" in why[5]
    assert why[6] == "rank 'x' is not a whole number"
    assert why[7] == "a label starts or ends with a hyphen"
    assert why[8] == "a label longer than 63 characters"
    assert why[10] == "not UTF-8"
    assert why[11] == "an empty label"


def test_only_the_first_ten_skipped_lines_are_kept_but_all_are_counted() -> None:
    entries, tally = read_all(b"bad name\n" * 25 + b"good.example\n")
    assert entries == [("good.example", None)]
    assert tally.skipped == 25 and len(tally.first) == names.SKIPPED_KEPT
    assert tally.first[-1].line == 10


def test_an_overlong_line_is_skipped_without_being_held() -> None:
    entries, tally = read_all(b"a" * 100_000 + b"\nexample.com\n")
    assert entries == [("example.com", None)]
    assert tally.first == [names.Skipped(1, f"longer than {names.MAX_LINE_BYTES} bytes")]


def test_names_past_253_characters_are_refused() -> None:
    name = ".".join(["a" * 63] * 4)  # 255 characters
    with pytest.raises(ValueError, match="longer than 253"):
        names.hostname(name)
    assert names.hostname(name[:253].rstrip(".")) == name[:253].rstrip(".")


def test_the_list_comes_in_bounded_chunks() -> None:
    data = b"".join(b"%d,n%d.example\n" % (i, i) for i in range(1, 26))
    tally = names.Tally()
    sizes = [len(c) for c in names.read(io.BytesIO(data), tally, chunk=10)]
    assert sizes == [10, 10, 5]


def test_a_header_past_the_first_line_is_a_bad_line() -> None:
    entries, tally = read_all(b"1,example.com\nrank,domain\n")
    assert entries == [("example.com", 1)]
    assert tally.first == [names.Skipped(2, "rank 'rank' is not a whole number")]
