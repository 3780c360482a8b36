"""The example bundle copied for a test that edits it, without the hero experiment's end date.

The end date would turn the experiment visitors of these tests into defaults once it passed.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.integration.server import ROOT

END_DATE = "    end: 2027-01-31T00:00:00Z\n"
VIP = {"orders_12m": 6, "spend_12m": 900}
CONSENTED = {"consent": {"personalization": True, "analytics": True}}


def bundle_copy(tmp_path: Path) -> Path:
    bundle = tmp_path / "bundle"
    for part in ("rules", "content", "models"):
        shutil.copytree(ROOT / part, bundle / part)
    placements = bundle / "rules" / "placements.yaml"
    text = placements.read_text()
    assert END_DATE in text
    placements.write_text(text.replace(END_DATE, ""))
    return bundle
