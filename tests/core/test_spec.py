"""The job spec: valid specs parse, each bad field is named, and the module stays torch-free."""

import json
import subprocess
import sys

import pytest

from mar_core.errors import SpecError
from mar_core.spec import JobSpec, parse_spec

BASE = {"kind": "train", "dataset": {"path": "data/synth"}}


def test_minimal_train_spec_gets_defaults():
    spec = parse_spec(BASE)
    assert spec.model.arch == "retinanet" and spec.train.iterations == 1000 and spec.distill is None


def test_distill_spec_accepts_student_alias_and_defaults_mar():
    spec = parse_spec({**BASE, "kind": "distill", "student": {"arch": "fcos"}, "teacher": {"checkpoint": "t"}})
    assert spec.model.arch == "fcos" and spec.distill.method == "mar"
    assert spec.distill.kappas == [1.0, 1.5, 2.0] and spec.distill.ring_values == [1.0, 0.5, 0.25]


@pytest.mark.parametrize("patch, param", [
    ({"train": {"lr": -1}}, "train.lr"),
    ({"model": {"arch": "yolo"}}, "model.arch"),
    ({"model": {"backbone": "vgg16"}}, "model.backbone"),
    ({"dataset": {"path": "x", "format": "csv"}}, "dataset.format"),
    ({"kind": "distill"}, "teacher"),
    ({"teacher": {"checkpoint": "t"}}, "teacher"),
    ({"bogus": 1}, "bogus"),
    ({"kind": "distill", "teacher": {"checkpoint": "t"}, "distill": {"method": "kd++"}}, "distill.method"),
    ({"kind": "distill", "teacher": {"checkpoint": "t"}, "distill": {"kappas": [1.0, 0.5], "ring_values": [1, 0.5]}},
     "distill"),
    ({"train": {"lr_steps": [0.9, 0.5]}}, "train.lr_steps"),
])
def test_bad_spec_names_the_field(patch, param):
    with pytest.raises(SpecError) as err:
        parse_spec({**BASE, **patch})
    assert err.value.param == param
    assert param.split(".")[-1] in str(err.value)


def test_unknown_architecture_lists_the_valid_ones():
    with pytest.raises(SpecError, match="retinanet, fcos, fasterrcnn"):
        parse_spec({**BASE, "model": {"arch": "yolo"}})


def test_spec_file_errors(tmp_path):
    with pytest.raises(SpecError, match="not found"):
        parse_spec(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(SpecError, match="not valid JSON"):
        parse_spec(bad)


def test_round_trip_through_json():
    spec = parse_spec({**BASE, "kind": "distill", "student": {"arch": "fcos"}, "teacher": {"checkpoint": "t"}})
    again = JobSpec.model_validate(json.loads(json.dumps(spec.to_json_dict())))
    assert again == spec


def test_spec_module_does_not_import_torch():
    code = "import sys, mar_core.spec, mar_core.names, mar_core.errors; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_peer_weights_default_per_detector_stage():
    from mar_core.spec import DistillSpec

    one = DistillSpec(method="fgd").with_weight_defaults(two_stage=False)
    two = DistillSpec(method="fgd").with_weight_defaults(two_stage=True)
    assert (one.fgd_alpha, one.fgd_lambda) == (1e-3, 5e-6) and (two.fgd_alpha, two.fgd_lambda) == (5e-5, 5e-7)
    assert DistillSpec(method="mgd").with_weight_defaults(False).loss_weight == 2e-5
    assert DistillSpec(method="mgd", loss_weight=0.5).with_weight_defaults(False).loss_weight == 0.5


def test_mar_weights_default_per_detector_stage_and_an_explicit_one_stays():
    from mar_core.spec import DistillSpec

    one = DistillSpec().with_weight_defaults(two_stage=False)
    two = DistillSpec().with_weight_defaults(two_stage=True)
    assert (one.alpha, one.beta, one.gamma) == (5e-4, 1.5e-4, 150.0)
    assert (two.alpha, two.beta, two.gamma) == (0.29, 0.013, 42.0)
    assert DistillSpec(gamma=7.0).with_weight_defaults(two_stage=True).gamma == 7.0
