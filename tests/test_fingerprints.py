"""probe.fingerprints: loading, rejections, matching per kind, false positives first, OONI CSV."""

import textwrap
from pathlib import Path

import pytest

from probe import fingerprints
from probe.fingerprints import Fingerprint, FingerprintError, FingerprintSet
from probe.record import EDE

DATA = Path(__file__).parent / "data"
OONI_CSV = DATA / "ooni_fingerprints.csv"


def write(tmp_path, text, name="fps.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def one(**entry):
    """A set of one signature, checked as the YAML loader would."""
    return FingerprintSet((Fingerprint(**{"name": "fp", **entry}),))


def rejection(tmp_path, entry_yaml):
    path = write(tmp_path, "fingerprints:\n  - " + entry_yaml.strip().replace("\n", "\n    "))
    with pytest.raises(FingerprintError) as e:
        fingerprints.load_fingerprints(path)
    assert e.value.file == str(path)
    return f"{e.value.key}: {e.value.why}"


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            "name: a\nkind: http_body\npattern: x\ncolour: red",
            "fingerprints[0].colour: unknown key (known: name, kind",
        ),
        (
            "name: a\nkind: http_body\npattern: '(unclosed'\nmatch: regex",
            "fingerprints[0].pattern: '(unclosed' is not a valid regex (missing ), unterminated",
        ),
        (
            "name: a\nkind: smtp_banner\npattern: x",
            "fingerprints[0].kind: 'smtp_banner' is not one of dns_address, dns_cname",
        ),
        (
            "name: a\nkind: dns_address\npattern: 10.0.0.0/33",
            "fingerprints[0].pattern: '10.0.0.0/33' is not an address or network",
        ),
        (
            "name: a\nkind: dns_address\npattern: 10.0.0.1/8",
            "fingerprints[0].pattern: '10.0.0.1/8' is not an address or network (10.0.0.1/8 has",
        ),
        (
            "name: a\nkind: dns_address\npattern: not-an-ip\nmatch: exact",
            "fingerprints[0].pattern: 'not-an-ip' is not an address or network",
        ),
        (
            "name: a\nkind: dns_address\npattern: 1.2.3.4\nmatch: contains",
            "fingerprints[0].match: 'contains' does not apply to dns_address (use one of exact,",
        ),
        (
            "name: a\nkind: dns_rcode\npattern: NXDOMAIN\nconfidence: confirmed",
            "fingerprints[0].confidence: an rcode is never decisive alone: use 'likely'",
        ),
        (
            "name: a\nkind: dns_rcode\npattern: NOTAUTH",
            "fingerprints[0].pattern: 'NOTAUTH' is not one of NXDOMAIN, REFUSED, SERVFAIL, NODATA",
        ),
        (
            "name: a\nkind: http_header\npattern: Olfeo",
            "fingerprints[0].pattern: 'Olfeo' is not 'Header-Name: pattern'",
        ),
        (
            "name: a\nkind: http_status\npattern: 4510",
            "fingerprints[0].pattern: '4510' is not a number from 100 to 599",
        ),
        (
            "name: a\nkind: dns_ede\npattern: censored",
            "fingerprints[0].pattern: 'censored' is not a number from 0 to 65535",
        ),
        (
            "name: a\nkind: http_body\npattern: x\nconfidence: sure",
            "fingerprints[0].confidence: 'sure' is not confirmed or likely",
        ),
        (
            "name: a\nkind: http_body\npattern: x\nasns: ['3215']",
            "fingerprints[0].asns: expected positive AS numbers, got ['3215']",
        ),
        (
            "name: a\nkind: http_body\npattern: x\ncountry: fr",
            "fingerprints[0].country: expected 2-letter codes, got ['fr']",
        ),
        (
            "name: a\nkind: http_body\npattern: x\nfalse_positive: 'no'",
            "fingerprints[0].false_positive: expected true or false",
        ),
        ("name: a\nkind: http_body", "fingerprints[0].pattern: missing"),
    ],
)
def test_rejections_name_the_key_and_reason(tmp_path, entry, message):
    assert rejection(tmp_path, entry).startswith(message)


def test_duplicate_names_and_file_shape_are_rejected(tmp_path):
    dup = write(
        tmp_path,
        """
        fingerprints:
          - {name: a, kind: http_body, pattern: x}
          - {name: a, kind: http_body, pattern: y}
        """,
    )
    with pytest.raises(FingerprintError, match=r": name 'a': duplicate name$"):
        fingerprints.load_fingerprints(dup)
    extra = write(tmp_path, "fingerprints: []\nversion: 2\n", "extra.yaml")
    with pytest.raises(FingerprintError, match=r"extra.yaml: version: unknown key"):
        fingerprints.load_fingerprints(extra)
    bad = write(tmp_path, "fingerprints:\n  - name: a\n  kind: b\n", "bad.yaml")
    with pytest.raises(FingerprintError, match=r"bad.yaml: line 3: "):
        fingerprints.load_fingerprints(bad)
    with pytest.raises(FingerprintError, match=r"nope.yaml: file: cannot read it"):
        fingerprints.load_fingerprints(tmp_path / "nope.yaml")


def test_dns_address_exact_and_cidr():
    exact = one(kind="dns_address", pattern="2001:db8::53")
    assert exact.match_dns(["192.0.2.1", "2001:0db8:0:0::53"], [], None).name == "fp"
    assert exact.match_dns(["2001:db8::54", "not-an-ip"], [], None) is None
    cidr = one(kind="dns_address", pattern="198.51.100.0/24")
    assert cidr.fingerprints[0].match == "cidr"
    assert cidr.match_dns(["198.51.100.77"], [], None) is not None
    assert cidr.match_dns(["198.51.101.1"], [], None) is None


def test_dns_cname_suffix_is_label_aligned_and_case_blind():
    s = one(kind="dns_cname", pattern="offre-illegale.anj.fr")
    assert s.match_dns([], ["www.casino.example.", "Offre-Illegale.ANJ.fr."], None) is not None
    assert s.match_dns([], ["cdn.offre-illegale.anj.fr"], None) is not None
    assert s.match_dns([], ["notoffre-illegale.anj.fr", "offre-illegale.anj.fr.evil"], None) is None
    rx = one(kind="dns_cname", pattern=r"^block\d+\.isp\.test$", match="regex")
    assert rx.match_dns([], ["BLOCK7.isp.test."], None) is not None
    assert rx.match_dns([], ["block.isp.test"], None) is None


def test_dns_rcode_is_scoped_to_its_networks():
    s = one(kind="dns_rcode", pattern="nxdomain", asns=(15557, 5410))
    assert s.match_dns([], [], 15557, rcode="NXDOMAIN").name == "fp"
    assert s.match_dns([], [], 3215, rcode="NXDOMAIN") is None
    assert s.match_dns([], [], None, rcode="NXDOMAIN") is None
    assert s.match_dns([], [], 5410, rcode="REFUSED") is None
    assert s.match_dns([], [], 5410) is None


def test_dns_rcode_nodata_means_noerror_without_answers():
    s = one(kind="dns_rcode", pattern="NODATA")
    assert s.match_dns([], [], 15557, rcode="NOERROR") is not None
    assert s.match_dns(["192.0.2.1"], [], 15557, rcode="NOERROR") is None


def test_dns_ede_by_code_or_text():
    code = one(kind="dns_ede", pattern=16)
    assert code.match_dns([], [], None, ede=[EDE(15), EDE(16, "Censored")]) is not None
    assert code.match_dns([], [], None, ede=[EDE(17)]) is None
    text = one(kind="dns_ede", pattern="unavailable in France", match="contains")
    assert text.match_dns([], [], None, ede=[EDE(16, "OpenDNS is unavailable in France")])
    assert text.match_dns([], [], None, ede=[EDE(16, "Censored")]) is None


def test_http_kinds():
    body = one(kind="http_body", pattern=r"blocked by (court|ARCOM) order", match="regex")
    assert body.match_http(200, {}, "<p>This site is blocked by ARCOM order</p>", "", None)
    assert body.match_http(200, {}, "blocked by the admin", "", None) is None
    assert body.match_http(200, {}, None, None, None) is None
    header = one(kind="http_header", pattern="Server: Olfeo", match="prefix")
    assert header.match_http(403, {"server": "Olfeo/6.2"}, "", "", None) is not None
    assert header.match_http(403, {"Server": "nginx Olfeo"}, "", "", None) is None
    assert header.match_http(403, {"X-Server": "Olfeo"}, "", "", None) is None
    status = one(kind="http_status", pattern="451", asns=(3215,))
    assert status.match_http(451, {}, "", "", 3215) is not None
    assert status.match_http(451, {}, "", "", 12322) is None
    assert status.match_http(200, {}, "", "", 3215) is None
    title = one(kind="http_title", pattern="AGCOM Stop Page", match="exact")
    assert title.match_http(200, {}, "", "AGCOM Stop Page", None) is not None
    assert title.match_http(200, {}, "", "AGCOM Stop Page 2", None) is None


def test_tls_cert_on_subject_or_issuer():
    s = one(kind="tls_cert", pattern="core1.netops.test")
    assert s.match_tls("CN=www.example.com", "CN=core1.netops.test,O=Widgits Pty Ltd")
    assert s.match_tls("CN=core1.netops.test", None) is not None
    assert s.match_tls("CN=www.example.com", "CN=R11,O=Let's Encrypt") is None


def test_false_positive_wins_over_a_block_match_whatever_the_file_order():
    block = Fingerprint(
        "ministry", "http_body", 'xtpage = "page-blocage-terrorisme"', confidence="confirmed"
    )
    fp = Fingerprint("olfeo", "http_header", "Server: Olfeo", "prefix", false_positive=True)
    fps = FingerprintSet((block, fp))
    hit = fps.match_http(200, {"Server": "Olfeo"}, 'var xtpage = "page-blocage-terrorisme";', "", 1)
    assert hit is not None and hit.name == "olfeo" and hit.false_positive
    assert fps.match_http(200, {}, 'xtpage = "page-blocage-terrorisme"', "", 1).name == "ministry"


def test_confirmed_is_preferred_to_likely():
    likely = Fingerprint("loopback_any", "dns_address", "127.0.0.1")
    confirmed = Fingerprint(
        "orange", "dns_address", "127.0.0.1", asns=(3215,), confidence="confirmed"
    )
    fps = FingerprintSet((likely, confirmed))
    assert fps.match_dns(["127.0.0.1"], [], 3215).name == "orange"
    assert fps.match_dns(["127.0.0.1"], [], 5410).name == "loopback_any"


def test_several_files_merge_later_ones_winning(tmp_path):
    lab = write(
        tmp_path,
        """
        fingerprints:
          - name: fr_anj_address
            kind: dns_address
            pattern: 10.200.9.9
            confidence: confirmed
          - name: lab_blockpage
            kind: http_title
            pattern: Lab block page
        """,
        "lab.yaml",
    )
    fps = fingerprints.load_fingerprints(fingerprints.PACKAGED_FINGERPRINTS, lab, OONI_CSV)
    assert fps.get("fr_anj_address").pattern == "10.200.9.9"
    assert fps.match_dns(["145.239.225.117"], [], None) is None
    assert fps.match_http(200, {}, "", "Lab block page", None).name == "lab_blockpage"
    assert fps.get("test.it_0") is not None and fps.get("fr_ministry_xtpage") is not None
    assert len(fps) == len(fingerprints.default_fingerprints()) + 1 + 10


def test_ooni_csv_mapping():
    fps = FingerprintSet.from_ooni_csv(OONI_CSV)
    assert len(fps) == 10
    fr0, fr2, es0 = fps.get("test.fr_0"), fps.get("test.fr_2"), fps.get("test.es_0")
    assert (fr0.kind, fr0.match, fr0.countries, fr0.confidence) == (
        "http_body",
        "contains",
        ("FR", "GF"),
        "confirmed",
    )
    assert (fr2.kind, fr2.pattern, fr2.match, fr2.false_positive) == (
        "http_header",
        "server: Olfeo",
        "prefix",
        True,
    )
    assert es0.confidence == "likely" and not es0.false_positive
    assert fps.get("test.cn_0").kind == "dns_cname" and fps.get("test.cn_0").match == "exact"
    assert fps.get("test.zz_0").countries == ()
    assert fps.get("test.ca_0").match == "regex" and fps.get("test.ca_0").confidence == "likely"
    assert fps.match_dns(["2001:db8::53"], [], None).name == "test.v6_0"
    assert fps.match_dns([], ["blocked.isp.test."], None).name == "test.cn_0"
    hit = fps.match_http(302, {"Location": "http://blocked.isp.test/"}, "", "", None)
    assert hit.name == "test.gb_0"


def test_ooni_csv_round_trip(tmp_path):
    original = FingerprintSet.from_ooni_csv(OONI_CSV)
    out = tmp_path / "out.csv"
    assert original.to_ooni_csv(out) == 10
    assert FingerprintSet.from_ooni_csv(out) == original


def test_packaged_signatures_export_what_ooni_can_carry(tmp_path):
    fps = fingerprints.default_fingerprints()
    out = tmp_path / "fr.csv"
    written = fps.to_ooni_csv(out)
    back = FingerprintSet.from_ooni_csv(out)
    assert len(back) == written
    assert {"fr_anj_cname", "fr_ministry_xtpage", "olfeo_server_header"} <= {
        f.name for f in back.fingerprints
    }
    assert back.get("http_451") is None  # a bare status has no OONI location
    cname = back.match_dns([], ["x.offre-illegale.anj.fr."], None)
    assert cname is not None and cname.name == "fr_anj_cname"
    assert back.match_dns([], ["offre-illegale.anj.fr.example"], None) is None


@pytest.mark.parametrize(
    ("csv_text", "message"),
    [
        (
            "name,location_found,pattern_type,pattern\nx,dns,glob,1.2.3.4\n",
            "line 2.pattern_type: 'glob' is not full, prefix, contains or regexp",
        ),
        (
            "name,location_found,pattern_type,pattern\nx,cookie,full,a\n",
            "line 2.location_found: 'cookie' is not dns, body or header.<name>",
        ),
        ("name,location_found,pattern\nx,dns,1.2.3.4\n", "header: missing pattern_type"),
        ("name,location_found,pattern_type,pattern\n,dns,full,1.2.3.4\n", "line 2.name: missing"),
        (
            "name,location_found,pattern_type,pattern\nx,body,regexp,(a\n",
            "line 2.pattern: '(a' is not a valid regex",
        ),
    ],
)
def test_ooni_csv_rejections(tmp_path, csv_text, message):
    path = write(tmp_path, csv_text, "f.csv")
    with pytest.raises(FingerprintError) as e:
        FingerprintSet.from_ooni_csv(path)
    assert str(e.value).startswith(f"{path}: {message}")


def test_packaged_file_carries_the_french_facts():
    fps = fingerprints.default_fingerprints()
    assert fps is fingerprints.default_fingerprints()
    assert fps.match_dns(["127.0.0.1"], [], 3215).name == "fr_orange_free_loopback"
    assert fps.match_dns(["127.0.0.1"], [], 51207).name == "fr_orange_free_loopback"
    assert fps.match_dns(["127.0.0.1"], [], 15557) is None
    assert fps.match_dns([], [], 5410, rcode="NXDOMAIN").name == "fr_sfr_bouygues_nxdomain"
    assert fps.match_dns(["145.239.225.117"], [], None).name == "fr_anj_address"
    assert fps.match_dns(["1.2.3.4"], ["offre-illegale.anj.fr."], None).name == "fr_anj_cname"
    assert fps.match_dns(["90.85.16.52"], [], None).name == "fr_ministry_address"
    assert fps.match_dns([], [], None, rcode="REFUSED", ede=[EDE(16)]).name == "ede_censored"
    assert fps.match_dns(["34.110.214.49"], [], None).name == "it_piracy_shield_address"
    assert fps.match_http(451, {}, "", "", 3215).name == "http_451"
    assert fps.match_http(200, {}, "", "AGCOM Stop Page", None).name == "it_agcom_title"
    assert (
        fps.match_tls(
            "CN=core1.netops.test,OU=Packetland,O=Widgits Pty Ltd", "CN=core1.netops.test"
        ).name
        == "es_digi_mitm_cert"
    )
    olfeo = fps.match_http(200, {"Server": "Olfeo"}, 'xtpage = "page-blocage-terrorisme"', "", 3215)
    assert olfeo.name == "olfeo_server_header" and olfeo.false_positive
    assert all(f.confidence == "likely" for f in fps.fingerprints if f.kind == "dns_rcode")
    assert all(f.source for f in fps.fingerprints)
