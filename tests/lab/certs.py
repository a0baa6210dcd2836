"""The lab's certificates: one trusted lab CA (the probe's --ca-file) and the wrong ones.

Files written in a directory: ca.pem (trust this), web.pem (every lab name), wrong_name.pem
(lab CA, another name), other_ca.pem (an untrusted CA), blockpage-<isp>.pem (lab CA, the ISP's
own name: never the blocked name) and selfsigned.pem (CN=core1.netops.test, O=Widgits Pty Ltd,
the TLS interceptor Digi Mobil was seen using; fingerprints-fr.md).
"""

from __future__ import annotations

import datetime
import pathlib

import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

INTERCEPTOR_CN = "core1.netops.test"
INTERCEPTOR_ORG = "Widgits Pty Ltd"


def blockpage_name(letter: str) -> str:
    return f"blockpage.isp-{letter}.test"


def write_all(directory: pathlib.Path, names: list[str], letters: list[str]) -> pathlib.Path:
    """Write every certificate the lab serves; return the CA file's path."""
    ca = trustme.CA(organization_name="Surblocage lab CA")
    ca.cert_pem.write_to_path(str(directory / "ca.pem"))
    _leaf(ca, directory / "web.pem", *names)
    _leaf(ca, directory / "wrong_name.pem", "other-name.example")
    for letter in letters:
        _leaf(ca, directory / f"blockpage-{letter}.pem", blockpage_name(letter))
    _leaf(trustme.CA(organization_name="Nobody trusts me"), directory / "other_ca.pem", *names)
    (directory / "selfsigned.pem").write_bytes(_self_signed())
    return directory / "ca.pem"


def _leaf(ca: trustme.CA, path: pathlib.Path, *names: str) -> None:
    cert = ca.issue_cert(*names, common_name=names[0])
    cert.private_key_and_cert_chain_pem.write_to_path(str(path))


def _self_signed() -> bytes:
    """Return key + certificate PEM of a self-signed leaf like the one Digi Mobil presents."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "AU"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, INTERCEPTOR_ORG),
            x509.NameAttribute(NameOID.COMMON_NAME, INTERCEPTOR_CN),
        ]
    )
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return key_pem + cert.public_bytes(serialization.Encoding.PEM)
