"""Write the alert rules (and their promtool tests) with a deployment's own links.

The rules in deploy/prometheus carry absolute links built from three bases: where the runbooks
are (deploy/README.md's sections), the collector's public URL (its API and dashboard pages) and
Grafana's. The files hold the defaults below; an operator renders them for their deployment:

    python scripts/alert_rules.py --runbook-base https://docs.example.org/surblocage/deploy \\
        --collector-url https://surblocage.example.org --grafana-url https://grafana.example.org \\
        --output /etc/prometheus/surblocage.rules.yml

`promtool test rules` checks the rendered rules against the equally rendered tests
(`--tests-output`).
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import urllib.parse

ROOT = pathlib.Path(__file__).resolve().parents[1]
RULES = ROOT / "deploy" / "prometheus" / "surblocage.rules.yml"
TESTS = ROOT / "deploy" / "prometheus" / "surblocage.rules.test.yml"
# the bases the files hold: each appears only as the start of a link
DEFAULTS = {
    "runbook_base": "https://github.com/surblocage/surblocage/blob/main/deploy/README.md",
    "collector_url": "http://127.0.0.1:8080",
    "grafana_url": "http://127.0.0.1:3000",
}


def render(text: str, **bases: str) -> str:
    """Return ``text`` with each default base replaced by the one given (trailing / dropped)."""
    for name, new in bases.items():
        text = text.replace(DEFAULTS[name], new.rstrip("/"))
    return text


def _base(value: str) -> str:
    parts = urllib.parse.urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise argparse.ArgumentTypeError(f"{value!r} is not an absolute http(s) URL without query")
    if '"' in value or "{" in value or "\\" in value:
        raise argparse.ArgumentTypeError(f"{value!r}: quotes, braces and backslashes are refused")
    return value


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description="Render Surblocage's alert rules with a deployment's runbook, collector and "
        "Grafana URLs."
    )
    p.add_argument(
        "--runbook-base",
        type=_base,
        default=DEFAULTS["runbook_base"],
        help="the URL of deploy/README.md as published (sections are #anchors)",
    )
    p.add_argument(
        "--collector-url",
        type=_base,
        default=DEFAULTS["collector_url"],
        help="the collector's public URL (its API and dashboard pages)",
    )
    p.add_argument(
        "--grafana-url",
        type=_base,
        default=DEFAULTS["grafana_url"],
        help="Grafana's URL (the Surblocage dashboard's links)",
    )
    p.add_argument("--output", type=pathlib.Path, help="the rules file to write (default: stdout)")
    p.add_argument("--tests-output", type=pathlib.Path,
                   help="also write the promtool tests, rendered alike, here")  # fmt: skip
    args = p.parse_args(argv)
    bases = {
        "runbook_base": args.runbook_base,
        "collector_url": args.collector_url,
        "grafana_url": args.grafana_url,
    }
    rules = render(RULES.read_text(), **bases)
    if args.output is None:
        sys.stdout.write(rules)
    else:
        args.output.write_text(rules)
    if args.tests_output is not None:
        tests = render(TESTS.read_text(), **bases)
        rule_file = args.output.name if args.output else RULES.name
        args.tests_output.write_text(tests.replace(f"  - {RULES.name}", f"  - {rule_file}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
