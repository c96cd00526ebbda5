"""The README and docs/ link only to files that exist in a clone."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# a Markdown link (relative to the page), a `../path` (relative to the page), a `docs/page.md` (to the root)
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)|`(\.\./[^`\s]+)`|`(docs/[^`\s]+\.md)`")


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves_inside_the_repository(doc: Path) -> None:
    for m in LINK.finditer(doc.read_text()):
        target = m.group(1) or m.group(2) or m.group(3)
        if "://" in target or target.startswith("mailto:"):
            continue
        path = ((ROOT if m.group(3) else doc.parent) / target).resolve()
        assert path.is_relative_to(ROOT), f"{doc.name} links {target}, outside the repository"
        assert path.exists(), f"{doc.name} links {target}, which does not exist"


def test_the_readme_points_at_the_design_document() -> None:
    assert "(docs/architecture.md)" in (ROOT / "README.md").read_text()
