"""``cryo-pipeline`` that SIGKILLs itself right before a chosen rename: a crash at an exact point.

Usage: ``python kill_at_replace.py NAME <cryo-pipeline arguments>``

Runs ``cryo_pipeline.cli.main`` in this process with ``os.replace`` wrapped: the first
``os.replace`` whose destination is named ``NAME`` is not done; the process sends itself
SIGKILL instead (no ``finally``, no ``atexit``: the same as the OOM killer at that instant).
Every output is written under a temporary name and renamed onto its final name at the end
(``cryo_pipeline.io.atomic``), so ``NAME`` = a stage's main output kills it in the middle of
committing its outputs, whatever the machine's speed: the ones renamed before are final,
``NAME`` and the ones after are still temporaries. Used by ``test_crash_safety.py``.
"""

from __future__ import annotations

import os
import runpy
import signal
import sys

if __name__ == "__main__":
    target = sys.argv[1]
    replace = os.replace

    def replace_or_die(src, dst, *args, **kwargs):
        if os.path.basename(os.fspath(dst)) == target:
            os.kill(os.getpid(), signal.SIGKILL)
        return replace(src, dst, *args, **kwargs)

    os.replace = replace_or_die
    sys.argv = ["cryo-pipeline", *sys.argv[2:]]
    runpy.run_module("cryo_pipeline.cli.main", run_name="__main__", alter_sys=True)
