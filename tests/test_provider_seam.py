"""The channel seam holds: no module outside ``channels/`` names an SMS provider.

Allowed: the wiring that builds the channels (``textdesk/services.py``), the settings that hold
their credentials, and migrations (history: the first schema had a ``twilio_sid`` column).
Data files (injection examples quoting "Twilio") are customer text, not code, and are not read.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROVIDERS = re.compile(r"twilio|vonage|nexmo|plivo|messagebird", re.IGNORECASE)
PACKAGES = ("agent", "tools", "guardrails", "prompts", "evals", "store", "textdesk", "web")
SUFFIXES = {".py", ".html", ".js", ".j2", ".txt", ".md"}
WIRING = {"textdesk/services.py", "textdesk/settings.py"}


def offenders(root: Path = ROOT) -> list[str]:
    found = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*")):
            rel = path.relative_to(root).as_posix()
            if path.suffix not in SUFFIXES or rel in WIRING or "/migrations/" in rel or "/data/" in rel:
                continue
            for n, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
                if PROVIDERS.search(line):
                    found.append(f"{rel}:{n}: {line.strip()[:100]}")
    return found


def test_no_module_outside_channels_names_a_provider() -> None:
    assert offenders() == [], "provider names outside channels/:\n" + "\n".join(offenders())


def test_the_check_sees_a_provider_named_in_a_domain_module(tmp_path: Path) -> None:
    (tmp_path / "textdesk").mkdir()
    (tmp_path / "textdesk" / "delivery.py").write_text("CODE = 21610  # Twilio: unsubscribed\n")
    (tmp_path / "web" / "templates").mkdir(parents=True)
    (tmp_path / "web" / "templates" / "x.html").write_text("<th>Plivo error</th>\n")
    (tmp_path / "textdesk" / "services.py").write_text("from channels.twilio import TwilioChannel\n")
    assert offenders(tmp_path) == [
        "textdesk/delivery.py:1: CODE = 21610  # Twilio: unsubscribed",
        "web/templates/x.html:1: <th>Plivo error</th>",
    ]
