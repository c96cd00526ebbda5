"""broker/admin is core: the one rule's checker (tests/unit/test_core_imports.py) applied to it.

(The screenshot tool, which starts processes and a browser, lives in
``broker/apps/nsqadmin_screenshot.py``, outside the core.)
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.test_core_imports import ROOT, check_source

MODULES = sorted(p.relative_to(ROOT) for p in (ROOT / "broker" / "admin").glob("*.py"))


def test_the_core_modules_are_found() -> None:
    assert Path("broker/admin/admin.py") in MODULES and len(MODULES) >= 8


@pytest.mark.parametrize("rel", MODULES, ids=str)
def test_admin_module_does_no_io(rel: Path) -> None:
    violations = check_source((ROOT / rel).read_text(), str(rel), ".".join(rel.parent.parts))
    assert not violations, "\n".join(map(str, violations))
