"""The API process never imports torch (nor the worker package)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

CODE = """
import sys, tempfile
from pathlib import Path
from fastapi.testclient import TestClient
import api.main, api.sdk
from api.settings import Settings
st = Settings(state_dir=Path(tempfile.mkdtemp()))
with TestClient(api.main.create_app(st)) as c:
    assert c.get('/readyz').status_code == 200
    c.get('/openapi.json')
bad = sorted(m for m in sys.modules if m == 'torch' or m.startswith(('torch.', 'torchvision', 'worker')))
print('IMPORTED', bad)
sys.exit(1 if bad else 0)
"""


def test_api_process_does_not_import_torch(tmp_path):
    r = subprocess.run(
        [sys.executable, "-c", CODE],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "IMPORTED []" in r.stdout
