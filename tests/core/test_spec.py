"""The job spec: valid specs parse, each bad field is named, and the module stays torch-free."""

import json
import subprocess
import sys

import pytest

from mar_core import names
from mar_core.errors import SpecError
from mar_core.methods import METHODS, parse_distill
from mar_core.methods.fgd import FGDSpec
from mar_core.methods.mar import MARSpec
from mar_core.methods.mgd import MGDSpec
from mar_core.spec import JobSpec, parse_spec
from mar_core.spec_hash import run_fingerprint

BASE = {"kind": "train", "dataset": {"path": "data/synth"}}


def test_minimal_train_spec_gets_defaults():
    spec = parse_spec(BASE)
    assert spec.model.arch == "retinanet" and spec.train.iterations == 1000 and spec.distill is None


def test_distill_spec_accepts_student_alias_and_defaults_mar():
    spec = parse_spec(
        {**BASE, "kind": "distill", "student": {"arch": "fcos"}, "teacher": {"checkpoint": "t"}}
    )
    assert spec.model.arch == "fcos" and spec.distill.method == "mar"
    assert spec.distill.kappas == [1.0, 1.5, 2.0] and spec.distill.ring_values == [1.0, 0.5, 0.25]


@pytest.mark.parametrize(
    "patch, param",
    [
        ({"train": {"lr": -1}}, "train.lr"),
        ({"model": {"arch": "yolo"}}, "model.arch"),
        ({"model": {"backbone": "vgg16"}}, "model.backbone"),
        ({"dataset": {"path": "x", "format": "csv"}}, "dataset.format"),
        ({"kind": "distill"}, "teacher"),
        ({"teacher": {"checkpoint": "t"}}, "teacher"),
        ({"bogus": 1}, "bogus"),
        (
            {"kind": "distill", "teacher": {"checkpoint": "t"}, "distill": {"method": "kd++"}},
            "distill.method",
        ),
        (
            {
                "kind": "distill",
                "teacher": {"checkpoint": "t"},
                "distill": {"kappas": [1.0, 0.5], "ring_values": [1, 0.5]},
            },
            "distill",
        ),
        ({"train": {"lr_steps": [0.9, 0.5]}}, "train.lr_steps"),
    ],
)
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
    spec = parse_spec(
        {**BASE, "kind": "distill", "student": {"arch": "fcos"}, "teacher": {"checkpoint": "t"}}
    )
    again = JobSpec.model_validate(json.loads(json.dumps(spec.to_json_dict())))
    assert again == spec


def test_spec_module_does_not_import_torch():
    code = "import sys, mar_core.spec, mar_core.names, mar_core.errors, mar_core.methods; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_peer_weights_default_per_detector_stage():
    one = FGDSpec().with_weight_defaults(two_stage=False)
    two = FGDSpec().with_weight_defaults(two_stage=True)
    assert (one.fgd_alpha, one.fgd_lambda) == (1e-3, 5e-6) and (two.fgd_alpha, two.fgd_lambda) == (5e-5, 5e-7)
    assert MGDSpec().with_weight_defaults(False).loss_weight == 2e-5
    assert MGDSpec(loss_weight=0.5).with_weight_defaults(False).loss_weight == 0.5


def test_mar_weights_default_per_detector_stage_and_an_explicit_one_stays():
    # unset feature_norm: standardised maps for a one-stage student, raw for a two-stage one
    one = MARSpec().with_weight_defaults(two_stage=False)
    two = MARSpec().with_weight_defaults(two_stage=True)
    assert (one.feature_norm, one.alpha, one.beta, one.gamma) == ("channel", 0.28, 0.45, 150.0)
    assert (two.feature_norm, two.alpha, two.beta, two.gamma) == ("none", 0.29, 0.013, 42.0)
    # a form given is kept, with its own defaults
    std_two = MARSpec(feature_norm="channel").with_weight_defaults(two_stage=True)
    raw_one = MARSpec(feature_norm="none").with_weight_defaults(two_stage=False)
    assert (std_two.feature_norm, std_two.alpha, std_two.beta, std_two.gamma) == ("channel", 0.28, 0.45, 42.0)
    assert (raw_one.feature_norm, raw_one.alpha, raw_one.beta, raw_one.gamma) == ("none", 5e-4, 1.5e-4, 150.0)
    assert MARSpec(gamma=7.0).with_weight_defaults(two_stage=True).gamma == 7.0
    with pytest.raises(ValueError, match="feature_norm is unset"):
        MARSpec().weight_defaults()


# ---------------------------------------------------------------- one spec model per method

DISTILL = {**BASE, "kind": "distill", "teacher": {"checkpoint": "t"}}
SHARED = {"adapter": "always", "kd_warmup_iters": 7}
# Every field of each method, set away from its default: the fields its loss module reads.
OWN_FIELDS = {
    "mar": {
        "alpha": 0.1,
        "beta": 0.02,
        "gamma": 50.0,
        "feature_loss": False,
        "relation_loss": False,
        "mask": "gaussian",
        "kappas": [1.0, 2.0],
        "ring_values": [1.0, 0.5],
        "gaussian_sigma": 0.3,
        "scale_norm": False,
        "relation_weight": "mask",
        "relation_weight_floor": 0.2,
        "feature_norm": "channel",
    },
    "feature_mse": {"loss_weight": 0.5},
    "fgd": {"fgd_alpha": 0.1, "fgd_beta": 0.2, "fgd_gamma": 0.3, "fgd_lambda": 0.4},
    "mgd": {"loss_weight": 0.5, "mgd_ratio": 0.3},
    "pkd": {"loss_weight": 0.5},
    "cwd": {"loss_weight": 0.5, "temperature": 2.0},
    "pkd_head": {"loss_weight": 0.5},
    "cwd_head": {"loss_weight": 0.5, "temperature": 2.0},
    "logit_kd": {"loss_weight": 0.5, "temperature": 2.0},
    "crosskd": {"cls_weight": 0.5, "box_weight": 2.0, "reused_teacher_head_idx": 4, "qfl_beta": 2.0},
}
# MAR's variants: MAR's fields and their own
OWN_FIELDS["mar_cross"] = {
    **OWN_FIELDS["mar"],
    "cross_cls_weight": 0.5,
    "cross_box_weight": 2.0,
    "reused_teacher_head_idx": 4,
    "qfl_beta": 2.0,
}


def test_the_registry_is_the_only_list_of_methods():
    assert names.DISTILL_METHODS == tuple(METHODS) and set(OWN_FIELDS) == set(METHODS)
    assert names.DISTILL_METHODS[0] == "mar"  # the default, first
    for name, method in METHODS.items():
        assert method.spec.model_fields["method"].default == name
        assert isinstance(parse_distill({"method": name}), method.spec)


@pytest.mark.parametrize("method", sorted(OWN_FIELDS))
def test_each_method_accepts_its_own_fields_and_no_other(method):
    spec_model = METHODS[method].spec
    assert spec_model.own_fields() == set(OWN_FIELDS[method])
    section = {"method": method, **SHARED, **OWN_FIELDS[method]}
    job = parse_spec({**DISTILL, "distill": section})
    assert type(job.distill) is spec_model and job.distill.model_dump() == section
    assert JobSpec.model_validate(json.loads(json.dumps(job.to_json_dict()))) == job


def test_mar_fields_only_on_mar_and_its_variants_and_shared_fields_on_every_method():
    peers = [m.spec for name, m in METHODS.items() if name != "mar" and m.spec.VARIANT_OF is None]
    assert not any(MARSpec.own_fields() & spec.own_fields() for spec in peers)
    assert all({"method", "adapter", "kd_warmup_iters"} <= set(m.spec.model_fields) for m in METHODS.values())


def test_a_field_of_another_method_is_refused_naming_the_field_and_both_methods():
    for method in METHODS:
        for other, fields in OWN_FIELDS.items():
            base = METHODS[other].spec.VARIANT_OF
            for field, value in fields.items():
                if field in OWN_FIELDS[method] or (base and field in OWN_FIELDS[base]):
                    continue  # a variant's field taken from its base: named as the base's
                with pytest.raises(SpecError) as err:
                    parse_spec({**DISTILL, "distill": {"method": method, field: value}})
                assert err.value.param == f"distill.{field}", (method, field)
                assert f"{field} is a field of method" in str(err.value) and other in str(err.value)
                assert str(err.value).endswith(f"not of {method}"), str(err.value)


def test_the_example_of_the_issue_reads_well():
    with pytest.raises(SpecError) as err:
        parse_spec({**DISTILL, "distill": {"method": "cwd", "alpha": 0.1}})
    assert err.value.param == "distill.alpha"
    assert str(err.value) == "invalid spec: distill.alpha: alpha is a field of method mar, not of cwd"
    with pytest.raises(
        SpecError,
        match="loss_weight is a field of methods feature_mse, mgd, pkd, cwd, pkd_head, cwd_head, logit_kd, not of fgd",
    ):
        parse_spec({**DISTILL, "distill": {"method": "fgd", "loss_weight": 1.0}})


@pytest.mark.parametrize(
    "section, param",
    [
        ({"method": "cwd", "temperature": 0}, "distill.temperature"),  # no union tag in the path
        ({"method": "mgd", "mgd_ratio": 1.5}, "distill.mgd_ratio"),
        ({"method": "pkd", "bogus": 1}, "distill.bogus"),
        ({"alpha": -1}, "distill.alpha"),  # method omitted: MAR
        ({"method": None}, "distill.method"),
        ({"method": 3}, "distill.method"),
    ],
)
def test_errors_inside_a_method_name_the_field_without_the_union_tag(section, param):
    with pytest.raises(SpecError) as err:
        parse_spec({**DISTILL, "distill": section})
    assert err.value.param == param


def test_an_unknown_method_lists_the_registered_ones():
    with pytest.raises(SpecError, match="unknown distillation method 'kd'; valid: " + ", ".join(METHODS)):
        parse_spec({**DISTILL, "distill": {"method": "kd"}})


def test_method_omitted_is_mar_and_a_model_instance_is_accepted():
    assert type(parse_spec({**DISTILL, "distill": {"gamma": 1.0}}).distill) is MARSpec
    spec = JobSpec(
        kind="distill", dataset={"path": "d"}, teacher={"checkpoint": "t"}, distill=FGDSpec(fgd_alpha=1.0)
    )
    assert spec.distill.fgd_alpha == 1.0


def test_mar_run_exits_2_on_a_field_of_another_method(tmp_path):
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({**DISTILL, "distill": {"method": "cwd", "alpha": 0.1}}))
    out = subprocess.run(
        [sys.executable, "-m", "mar_cli.main", "run", str(spec), "--workdir", str(tmp_path / "w")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2, out.stderr
    assert "distill.alpha: alpha is a field of method mar, not of cwd" in out.stderr


def test_tracking_is_dumped_only_when_set_and_keeps_the_run_fingerprint():
    plain = parse_spec(BASE)
    assert "tracking" not in plain.to_json_dict()  # earlier specs keep their hashes
    tracked = parse_spec({**BASE, "tracking": {"mlflow": {"uri": "http://mlflow:5000"}}})
    assert tracked.to_json_dict()["tracking"] == {
        "mlflow": {"uri": "http://mlflow:5000", "experiment": "mar"}
    }
    assert run_fingerprint(tracked.to_json_dict()) == run_fingerprint(plain.to_json_dict())
    with pytest.raises(SpecError) as e:
        parse_spec({**BASE, "tracking": {"mlflow": {"uri": "mlflow-host"}}})
    assert e.value.param == "tracking.mlflow.uri"
