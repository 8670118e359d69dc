"""Runs ``ray_cases.py`` in a network namespace with nothing but loopback (``unshare -n``).

Ray (2.60) binds its servers to every interface whatever node address it is given; in a namespace whose
only interface is ``lo`` the local cluster the tests start is reachable from 127.0.0.1 and nowhere else.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_race_on_a_loopback_only_ray_cluster():
    assert shutil.which("unshare") and shutil.which("ip"), "needs util-linux's unshare and iproute2's ip"
    inner = f"ip link set lo up && exec {sys.executable} -m pytest -q -p no:cacheprovider tests/ray_cases.py"
    done = subprocess.run(["unshare", "--net", "--", "sh", "-c", inner], cwd=ROOT, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "3 passed" in done.stdout
