"""The example script runs end to end and its classifier actually separates the activities."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "examples" / "activity_classifier.py"


def test_activity_classifier_example_runs_and_classifies():
    result = subprocess.run([sys.executable, str(SCRIPT), "--train", "150", "--test", "90"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    accuracy = float(next(line for line in result.stdout.splitlines() if line.startswith("accuracy:")).split()[1])
    assert accuracy > 0.9, result.stdout  # chance is 1/3
    assert "ComplementaryFilter  CPUExecutionProvider" in result.stdout
