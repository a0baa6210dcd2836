"""A flag's evidence package: a zip a lawyer or a regulator can keep, signed by the collector.

The zip holds README.txt, flag.json (the flag as GET /api/v1/flags shows it), history.json
(every flag of the same network, service and method), records/<id>.json (each record of the
flag's evidence, with the control the collector measured beside it), public_key.pem, and
manifest.json (the SHA-256 of every other file) with manifest.sig, its Ed25519 signature by
the collector's key. The key is made once per database (collector_keys) and its public half is
served at GET /api/v1/evidence/key, so a package can be checked against the collector that
made it, years later, without trusting whoever handed it over.
"""

from __future__ import annotations

import datetime
import hashlib
import io
import json
import zipfile
from collections.abc import Mapping, Sequence
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

FORMAT = "surblocage-evidence/1"
KEY_NAME = "evidence_ed25519"  # its 32 random bytes are the Ed25519 seed

README = """Surblocage evidence package ({format})

This archive documents one blocking flag found by a Surblocage collector: a legal service
measured as blocked on one network by volunteers' probes, while the collector's own vantage
(the control) reached it.

- flag.json: the flag (network, service, method, first and last seen, probes, confidence,
  and what the probes' diagnostics found: forged DNS answers, resets, the hop of the block).
- history.json: every flag of the same network, service and method (blocks opened and lifted).
- records/<id>.json: each measurement the flag rests on, step by step (DNS, TCP, TLS, HTTP),
  with the collector's control measurement under "control".
- manifest.json: the SHA-256 of every file above; manifest.sig: its Ed25519 signature by the
  collector's key; public_key.pem: that key's public half, also served by the collector at
  {key_url}.

To check it: compare public_key.pem with the collector's published key, then
  openssl pkeyutl -verify -pubin -inkey public_key.pem -rawin -in manifest.json \\
      -sigfile manifest.sig
and check each file's SHA-256 (sha256sum) against manifest.json.

Dossier de preuves Surblocage : un signalement de blocage, les mesures des sondes, le contrôle
du collecteur et l'historique, signés par la clé du collecteur (vérification ci-dessus).
"""


def signing_key(secret_hex: str) -> Ed25519PrivateKey:
    """The collector's evidence key, from its stored secret (``Store.key(KEY_NAME)``)."""
    return Ed25519PrivateKey.from_private_bytes(bytes.fromhex(secret_hex)[:32])


def public_pem(key: Ed25519PrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def _json(value: Any) -> bytes:
    return json.dumps(value, indent=1, sort_keys=True, ensure_ascii=False).encode() + b"\n"


def package(
    flag: Mapping[str, Any],
    history: Sequence[Mapping[str, Any]],
    records: Sequence[Mapping[str, Any]],
    key: Ed25519PrivateKey,
    key_url: str,
    now: datetime.datetime,
) -> bytes:
    """Return the zip of ``flag``'s evidence, signed with ``key``."""
    files: dict[str, bytes] = {
        "README.txt": README.format(format=FORMAT, key_url=key_url).encode(),
        "flag.json": _json(flag),
        "history.json": _json(list(history)),
        "public_key.pem": public_pem(key).encode(),
    }
    for r in records:
        files[f"records/{r['id']}.json"] = _json(r)
    manifest = _json(
        {
            "format": FORMAT,
            "flag": flag["id"],
            "generated_at": now.astimezone(datetime.UTC).isoformat(timespec="seconds"),
            "files": {name: hashlib.sha256(body).hexdigest() for name, body in files.items()},
        }
    )
    files["manifest.json"] = manifest
    files["manifest.sig"] = key.sign(manifest)
    out = io.BytesIO()
    stamp = now.astimezone(datetime.UTC).timetuple()[:6]
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for name, body in files.items():
            z.writestr(zipfile.ZipInfo(name, date_time=stamp), body)
    return out.getvalue()


class BadPackage(ValueError):
    """A package that does not check: a bad signature, a changed or missing file."""


def verify(zipped: bytes, public_key_pem: str) -> dict[str, Any]:
    """Check a package against the collector's public key; return its manifest, or raise
    BadPackage saying what fails."""
    key = serialization.load_pem_public_key(public_key_pem.encode())
    if not isinstance(key, Ed25519PublicKey):
        raise BadPackage("the public key is not an Ed25519 key")
    with zipfile.ZipFile(io.BytesIO(zipped)) as z:
        manifest, signature = z.read("manifest.json"), z.read("manifest.sig")
        try:
            key.verify(signature, manifest)
        except InvalidSignature:
            raise BadPackage("manifest.sig does not match manifest.json and the key") from None
        doc = json.loads(manifest)
        for name, digest in doc["files"].items():
            if hashlib.sha256(z.read(name)).hexdigest() != digest:
                raise BadPackage(f"{name}: its SHA-256 differs from the manifest's")
        extra = set(z.namelist()) - set(doc["files"]) - {"manifest.json", "manifest.sig"}
        if extra:
            raise BadPackage(f"files not in the manifest: {sorted(extra)}")
    return dict(doc)
