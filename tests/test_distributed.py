"""Data-parallel training with Accelerate (DDP over gloo, 2 CPU processes) follows the one-process run at the
same global batch. The launch runs in a network namespace with only loopback, so its rendezvous listens on
127.0.0.1 alone."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = "tests/distributed_fit.py"


def _curves(command: str) -> dict:
    inner = f"ip link set lo up && exec {command}"
    done = subprocess.run(["unshare", "--net", "--", "sh", "-c", inner], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert len(lines) == 1, done.stdout  # the main process alone reports
    return json.loads(lines[0])


def test_two_processes_follow_one_at_the_same_global_batch():
    assert shutil.which("unshare") and shutil.which("ip"), "needs util-linux's unshare and iproute2's ip"
    one = _curves(f"{sys.executable} {SCRIPT} 8")
    launcher = (f"{sys.executable} -m accelerate.commands.launch --multi_gpu --num_processes 2 --num_machines 1 "
                "--mixed_precision no --dynamo_backend no --main_process_port 29517")
    two = _curves(f"{launcher} {SCRIPT} 8")
    assert (one["processes"], two["processes"]) == (1, 2)
    assert len(one["train"]) == len(two["train"]) == 4
    np.testing.assert_allclose(two["train"], one["train"], rtol=1e-4)
    np.testing.assert_allclose(two["val"], one["val"], rtol=1e-4)
    assert one["train"][-1] < one["train"][0]  # it learned something: the curves are worth comparing
