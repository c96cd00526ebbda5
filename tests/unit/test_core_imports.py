"""The one rule, as a test: the core never does I/O and never reads time or randomness.

Each core module is parsed (never imported) and checked for imports of the
modules that reach the outside world, for imports of the layers that do
(``broker.runtime``, ``broker.apps``, ``nsqsim``), for file, console and
clock access through builtins (``open()``, ``print()``, ``io.open``,
``sys.stdout``, ``datetime.now()``), and, for ``model/``, for any import of
``broker`` at all.  One exemption: ``print()`` inside a module's
``if __name__ == "__main__":`` block, the shell that runs it as a program
(``python -m model.explore`` reports on stdout); imports there are still
checked.  Relative imports are resolved first, so ``from .. import
runtime`` is caught too.  The checker is tested on synthetic sources below, so
it is shown able to fail.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CORE_DIRS = ("broker/wire", "broker/nsqd", "broker/lookupd", "broker/storage", "broker/client", "model")

FORBIDDEN_MODULES = frozenset(
    {
        "asyncio",
        "socket",
        "time",
        "random",
        "secrets",
        "threading",
        "multiprocessing",
        "concurrent",
        "uuid",
        "simpy",
        "selectors",
        "select",
        "subprocess",
        "signal",
        "os",
        "pathlib",
        "shutil",
        "tempfile",
        "glob",
        "fcntl",
    }
)
FORBIDDEN_PACKAGES = ("broker.runtime", "broker.apps", "nsqsim")
FORBIDDEN_CALLS = frozenset({"open", "print", "input", "__import__"})
# module -> attributes that read files, the console or the clock
FORBIDDEN_ATTRIBUTES = {
    "io": {"open", "open_code"},
    "codecs": {"open"},
    "builtins": {"open", "print", "input"},
    "sys": {"stdin", "stdout", "stderr"},
    "datetime": {"now", "utcnow", "today"},
    "date": {"today"},
}


@dataclass(frozen=True)
class Violation:
    path: str
    line: int
    what: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.what}"


def _absolute(module: str | None, level: int, package: str) -> str:
    if level == 0:
        return module or ""
    parts = package.split(".")
    base = parts[: len(parts) - (level - 1)] if level > 1 else parts
    return ".".join([*base, *([module] if module else [])])


def _forbidden_module(name: str, *, model: bool) -> str | None:
    top = name.split(".")[0]
    if top in FORBIDDEN_MODULES:
        return f"imports {name}"
    for pkg in FORBIDDEN_PACKAGES:
        if name == pkg or name.startswith(pkg + "."):
            return f"imports {name}, which does I/O"
    if model and (name == "broker" or name.startswith("broker.")):
        return f"imports {name}: model/ imports nothing of broker/"
    return None


def check_source(source: str, path: str, package: str) -> list[Violation]:
    """Every breach of the core rule in ``source`` (a module of ``package``)."""
    model = package == "model" or package.startswith("model.")
    found: list[Violation] = []

    def bad(node: ast.AST, what: str) -> None:
        found.append(Violation(path, getattr(node, "lineno", 0), what))

    tree = ast.parse(source, filename=path)
    shell = {id(n) for block in tree.body if _is_main_block(block) for n in ast.walk(block)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                why = _forbidden_module(alias.name, model=model)
                if why:
                    bad(node, why)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node.module, node.level, package)
            why = _forbidden_module(base, model=model)
            if why:
                bad(node, why)
            for alias in node.names:
                if alias.name in FORBIDDEN_ATTRIBUTES.get(base, ()):
                    bad(node, f"imports {alias.name} from {base}")
                else:
                    why = _forbidden_module(f"{base}.{alias.name}", model=model)
                    if why and not _forbidden_module(base, model=model):
                        bad(node, why)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            if node.func.id in FORBIDDEN_CALLS and not (node.func.id == "print" and id(node) in shell):
                bad(node, f"calls {node.func.id}()")
        elif isinstance(node, ast.Attribute):
            owner = node.value
            name = owner.id if isinstance(owner, ast.Name) else owner.attr if isinstance(owner, ast.Attribute) else ""
            if node.attr in FORBIDDEN_ATTRIBUTES.get(name, ()):
                bad(node, f"uses {name}.{node.attr}")
    return sorted(found, key=lambda v: v.line)


def _is_main_block(node: ast.stmt) -> bool:
    """``if __name__ == "__main__":`` at a module's top level."""
    if not isinstance(node, ast.If) or not isinstance(node.test, ast.Compare):
        return False
    t = node.test
    return (
        isinstance(t.left, ast.Name)
        and t.left.id == "__name__"
        and len(t.ops) == 1
        and isinstance(t.ops[0], ast.Eq)
        and isinstance(t.comparators[0], ast.Constant)
        and t.comparators[0].value == "__main__"
    )


def _is_asyncio_layer(rel: Path) -> bool:
    # The client's asyncio Producer/Consumer sit beside its sans-IO core.
    parts = rel.parts
    if parts[:2] != ("broker", "client"):
        return False
    return "asyncio" in rel.name or any(p.startswith("aio") for p in parts[2:])


def core_modules() -> list[Path]:
    files = []
    for d in CORE_DIRS:
        for path in sorted((ROOT / d).rglob("*.py")):
            rel = path.relative_to(ROOT)
            if not _is_asyncio_layer(rel):
                files.append(rel)
    return files


def _package(rel: Path) -> str:
    # The package relative imports start from: the directory, for __init__ too.
    return ".".join(rel.parent.parts)


@pytest.mark.parametrize("rel", core_modules(), ids=str)
def test_core_module_does_no_io(rel: Path) -> None:
    violations = check_source((ROOT / rel).read_text(), str(rel), _package(rel))
    assert not violations, "\n".join(map(str, violations))


def test_core_modules_are_found() -> None:
    found = {str(p) for p in core_modules()}
    assert "broker/nsqd/options.py" in found
    assert "model/__init__.py" in found


# -- the checker itself -------------------------------------------------------------------


def lines_of(source: str, package: str = "broker.nsqd") -> list[int]:
    return [v.line for v in check_source(source, "synthetic.py", package)]


@pytest.mark.parametrize(
    "source",
    [
        "import asyncio",
        "import os.path",
        "import time as t",
        "from random import choice",
        "from concurrent.futures import ThreadPoolExecutor",
        "from broker.runtime import AsyncioClock",
        "from broker import runtime",
        "from .. import runtime",
        "from ..apps.nsqd import main",
        "import nsqsim.cluster",
        "from io import open",
        "x = open('f')",
        "print('hello')",
        "if __name__ == '__main__':\n    main()\nprint('x')",
        "if __name__ == '__main__':\n    import socket",
        "if __name__ != '__main__':\n    print('x')",
        "import io\nio.open('f')",
        "import sys\nsys.stdout.write('x')",
        "import datetime\ndatetime.datetime.now()",
        "from datetime import date\ndate.today()",
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import socket",
    ],
)
def test_checker_catches(source: str) -> None:
    assert lines_of(source) == [source.count("\n") + 1]


def test_checker_names_file_and_line() -> None:
    source = "from __future__ import annotations\n\nimport json\nimport subprocess\n"
    [violation] = check_source(source, "broker/nsqd/bad.py", "broker.nsqd")
    assert str(violation) == "broker/nsqd/bad.py:4: imports subprocess"


def test_model_may_not_import_broker() -> None:
    assert lines_of("from broker.ports import Clock", package="model") == [1]
    assert lines_of("from broker.ports import Clock", package="broker.nsqd") == []


@pytest.mark.parametrize(
    "source",
    [
        "from broker.ports import Clock, Connection",
        "from . import options\nfrom .options import Options",
        "import io\nbuf = io.BytesIO()",
        "import json, struct, zlib, hashlib, heapq",
        "def f(self):\n    return self.clock.now()",
        "import datetime\ndelta = datetime.timedelta(seconds=1)",
        "def f(fs):\n    return fs.open_append('x')",
        "if __name__ == '__main__':\n    raise SystemExit(main(report=print))",
    ],
)
def test_checker_passes_clean_code(source: str) -> None:
    assert lines_of(source) == []


def test_asyncio_client_layer_is_exempt() -> None:
    assert _is_asyncio_layer(Path("broker/client/asyncio_consumer.py"))
    assert _is_asyncio_layer(Path("broker/client/aio/producer.py"))
    assert not _is_asyncio_layer(Path("broker/client/core.py"))
    assert not _is_asyncio_layer(Path("broker/nsqd/asyncio_thing.py"))
