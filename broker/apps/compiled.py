"""The daemon on the mypyc-compiled build of the broker core, when there is a current one.

``./dev.sh compile`` (``python -m nsqsim.compiled``) compiles the core's hot
modules (the V2 wire codec, message, channel, topic, protocol, node) into a
copy of the tree, ``.build/compiled``, stamped with a hash of the sources it
was built from.  ``nsqd`` re-executes itself on that copy before it does
anything else when the copy is current, so an edited source never runs stale
compiled code; otherwise it runs on the pure-Python tree, as on a fresh
machine without a C compiler.  The process keeps its pid, argv, environment
and working directory.

``NSQD_COMPILED`` chooses: ``auto`` (the default: the build if it is current),
``0`` (never), ``1`` (build it first if it is missing or stale; a failed build
falls back to pure Python with a warning).  ``NSQD_COMPILED_DIR`` names another
build directory (tests build one in a temporary directory).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["DIR_ENV", "ENV", "running_compiled", "use_compiled_build"]

ENV = "NSQD_COMPILED"
DIR_ENV = "NSQD_COMPILED_DIR"


def use_compiled_build(argv: Sequence[str], module: str = "broker.apps.nsqd") -> None:
    """Re-execute ``python -m module argv`` on the compiled build if the setting allows; else return."""
    mode = os.environ.get(ENV, "auto") or "auto"
    if mode == "0":
        return
    try:
        from nsqsim import compiled
    except ImportError:  # an installation without the simulator package
        return
    if os.environ.get(compiled.MARK) == "1":
        return  # this process is the re-executed one
    build_dir = Path(os.environ.get(DIR_ENV) or compiled.BUILD)
    try:
        fresh = compiled.current(build_dir=build_dir)
    except (OSError, subprocess.SubprocessError):  # not a git checkout, or no git: no build to trust
        return
    if not fresh:
        if mode != "1":
            return
        print(f"nsqd: building the compiled core in {build_dir} (about a minute)...", file=sys.stderr, flush=True)
        try:
            compiled.build(build_dir=build_dir, quiet=True)
        except (OSError, subprocess.SubprocessError) as exc:
            print(f"nsqd: the compiled build failed ({exc}); running on pure Python", file=sys.stderr, flush=True)
            return
    compiled.exec_compiled(module, argv, build_dir=build_dir)


def running_compiled() -> bool:
    """Whether this process's broker core is the compiled build's extensions."""
    import broker.nsqd.channel

    return not (broker.nsqd.channel.__file__ or "").endswith(".py")
