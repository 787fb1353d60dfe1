"""Code-running pickles are refused at upload (issue 33, item 3): the API reads a checkpoint's
pickles opcode by opcode (``mar_core.pickle_scan``, no torch) and refuses what
``torch.load(weights_only=True)`` refuses, naming the first forbidden global."""

from __future__ import annotations

import pickle

import pytest
import torch
import torch._weights_only_unpickler as weights_only

from mar_core.pickle_scan import WEIGHTS_ONLY_GLOBALS, WEIGHTS_ONLY_OPCODES, UnsafePickle, scan_checkpoint
from tests.api.checkpoint_writers import RunsCode, save, state_dict
from tests.api.conftest import distill_spec, error_params, train_spec


def test_the_allow_lists_are_torchs():
    assert WEIGHTS_ONLY_GLOBALS == set(weights_only._get_allowed_globals())
    assert WEIGHTS_ONLY_OPCODES == {
        name
        for name in dir(weights_only)
        if name.isupper() and isinstance(getattr(weights_only, name), bytes)
    }


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_a_torchvision_state_dict_is_accepted_and_stored(client, auth, settings, tmp_path, legacy):
    path = save(state_dict(), tmp_path / "teacher.pth", legacy=legacy)
    scan_checkpoint(path)
    with open(path, "rb") as f:
        r = client.post("/checkpoints", files={"file": ("teacher.pth", f)}, headers=auth)
    assert r.status_code == 201, r.text
    stored = settings.checkpoint_root / r.json()["path"]
    assert stored.read_bytes() == path.read_bytes()
    assert torch.load(stored, weights_only=True).keys() == state_dict().keys()


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_a_checkpoint_that_runs_code_is_refused_naming_the_global(client, auth, settings, tmp_path, legacy):
    marker = tmp_path / "ran"
    path = save({**state_dict(), "extra": RunsCode(marker)}, tmp_path / "evil.pt", legacy=legacy)
    with pytest.raises(pickle.UnpicklingError):  # what the worker would say
        torch.load(path, weights_only=True)
    with open(path, "rb") as f:
        r = client.post("/checkpoints", files={"file": ("teacher.pt", f)}, headers=auth)
    assert r.status_code == 422 and error_params(r) == ["file"], r.text
    assert "posix.system" in r.json()["detail"][0]["message"]
    assert not marker.exists()  # nothing ran
    assert not list((settings.checkpoint_root / "uploads").rglob("*.*"))  # nothing stored


@pytest.mark.parametrize(("protocol", "named"), [(2, "posix.system"), (4, "posix.system (by STACK_GLOBAL)")])
def test_a_plain_malicious_pickle_is_refused(client, auth, tmp_path, protocol, named):
    marker = tmp_path / "ran"
    data = pickle.dumps(RunsCode(marker), protocol=protocol)
    r = client.post("/checkpoints", files={"file": ("teacher.pt", data)}, headers=auth)
    assert r.status_code == 422 and error_params(r) == ["file"], r.text
    assert named in r.json()["detail"][0]["message"]
    assert not marker.exists()


def test_a_pickle_without_torchs_magic_number_is_refused(tmp_path):
    path = tmp_path / "plain.pt"
    path.write_bytes(pickle.dumps({"w": [1.0, 2.0]}, protocol=2))
    with pytest.raises(UnsafePickle, match="magic number"):
        scan_checkpoint(path)


@pytest.mark.parametrize("field", ["teacher.checkpoint", "model.init_checkpoint"])
def test_a_code_running_file_named_at_submit_is_refused(client, auth, settings, tmp_path, field):
    """A file already in the checkpoint root (copied there, or uploaded before this check) is
    read the same way when a spec names it; a file that is no checkpoint at all is left to the
    worker, which says so."""
    marker = tmp_path / "ran"
    evil = save({"w": RunsCode(marker)}, settings.checkpoint_root / "evil.pt", legacy=True)
    good = save(state_dict(), settings.checkpoint_root / "good.pt")

    def spec(path):
        if field == "teacher.checkpoint":
            return distill_spec(path)
        return train_spec(model={"init_checkpoint": str(path)})

    r = client.post("/jobs", json=spec(evil), headers=auth)
    assert r.status_code == 422 and error_params(r) == [field], r.text
    assert "posix.system" in r.json()["detail"][0]["message"] and not marker.exists()
    assert client.post("/jobs", json=spec(good), headers=auth).status_code == 201
