"""Every numeric spec field has a bound, floats are finite and text holds no control character:
each refused naming the field (issue 17, item 1)."""

import pytest

from mar_core.errors import SpecError
from mar_core.spec import parse_spec
from mar_core.spec_limits import MAX_GPUS, MAX_SEED, control_char

BASE = {"kind": "train", "dataset": {"path": "data/synth"}}
DISTILL = {**BASE, "kind": "distill", "teacher": {"checkpoint": "t"}}


def _param(spec: dict) -> str:
    with pytest.raises(SpecError) as err:
        parse_spec(spec)
    return err.value.param


@pytest.mark.parametrize(
    "patch, param",
    [
        ({"resources": {"gpus": 1_000_000}}, "resources.gpus"),
        ({"resources": {"gpus": MAX_GPUS + 1}}, "resources.gpus"),
        ({"train": {"batch_size": 1_000_000_000}}, "train.batch_size"),
        ({"train": {"iterations": 3_000_000_000}}, "train.iterations"),
        ({"train": {"iterations": 10**26}}, "train.iterations"),
        ({"train": {"warmup_iters": 10**12}}, "train.warmup_iters"),
        ({"train": {"checkpoint_every": 10**12}}, "train.checkpoint_every"),
        ({"train": {"eval_every": 10**12}}, "train.eval_every"),
        ({"train": {"log_every": 10**12}}, "train.log_every"),
        ({"train": {"num_workers": 10_000}}, "train.num_workers"),
        ({"train": {"eval_max_images": 10**12}}, "train.eval_max_images"),
        ({"seed": 10**23}, "seed"),
        ({"seed": MAX_SEED + 1}, "seed"),
        ({"seed": -1}, "seed"),
        ({"model": {"max_size": 100_000}}, "model.max_size"),
        ({"model": {"min_size": 100_000}}, "model.min_size"),
        ({"model": {"min_size": [128, 100_000]}}, "model.min_size"),
        ({"dataset": {"path": "d", "max_images": 10**12}}, "dataset.max_images"),
    ],
)
def test_numbers_beyond_their_range_are_refused_by_name(patch, param):
    assert _param({**BASE, **patch}) == param


@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan"), "Infinity", "NaN"])
@pytest.mark.parametrize(
    "where, param",
    [
        ({"train": {"lr": None}}, "train.lr"),
        ({"train": {"grad_clip": None}}, "train.grad_clip"),
        ({"model": {"anchor_scale": None}}, "model.anchor_scale"),
        ({"train": {"weight_decay": None}}, "train.weight_decay"),
    ],
)
def test_non_finite_floats_are_refused(value, where, param):
    section, fields = next(iter(where.items()))
    field = next(iter(fields))
    assert _param({**BASE, section: {field: value}}) == param


@pytest.mark.parametrize("value", [float("inf"), 1e300])
def test_kd_weights_are_finite_and_bounded(value):
    assert _param({**DISTILL, "distill": {"alpha": value}}) == "distill.alpha"


@pytest.mark.parametrize(
    "spec, param",
    [
        ({**BASE, "name": "a\x00b"}, "name"),
        ({**BASE, "name": "\x1b[31mred\x1b[0m"}, "name"),
        ({**BASE, "name": "two\nlines"}, "name"),
        ({**BASE, "dataset": {"path": "data/\x00synth"}}, "dataset.path"),
        ({**BASE, "dataset": {"path": "d", "train_split": "tr\x00ain"}}, "dataset.train_split"),
        ({**BASE, "dataset": {"path": "d", "val_split": "v\x07"}}, "dataset.val_split"),
        ({**BASE, "dataset": {"path": "d", "images_dir": "i\x00"}}, "dataset.images_dir"),
        ({**BASE, "dataset": {"path": "d", "class_names": ["ok", "b\x00d"]}}, "dataset.class_names"),
        ({**DISTILL, "teacher": {"checkpoint": "t\x00"}}, "teacher.checkpoint"),
        ({**DISTILL, "teacher": {"checkpoint": "t", "class_names": ["\x9b"]}}, "teacher.class_names"),
        ({**BASE, "model": {"init_checkpoint": "x\x00"}}, "model.init_checkpoint"),
        ({**BASE, "name": "\ud800"}, "name"),
    ],
)
def test_control_characters_in_text_are_refused(spec, param):
    assert _param(spec).startswith(param)


def test_the_limits_leave_real_jobs_alone():
    spec = parse_spec(
        {
            **BASE,
            "name": "résumé – 検出 job",
            "seed": MAX_SEED,
            "resources": {"gpus": 8},
            "train": {"iterations": 1_000_000, "batch_size": 256, "lr": 0.02, "num_workers": 16},
            "model": {"min_size": [640, 800], "max_size": 1333},
        }
    )
    assert spec.resources.gpus == 8 and spec.seed == MAX_SEED
    assert control_char("plain text") is None and control_char("a\tb") == "\t"


def test_the_openapi_schema_publishes_the_bounds():
    from mar_core.spec import JobSpec

    schema = JobSpec.model_json_schema()
    defs = schema["$defs"]
    assert defs["ResourcesSpec"]["properties"]["gpus"]["maximum"] == MAX_GPUS
    assert defs["TrainSpec"]["properties"]["batch_size"]["maximum"] == 4096
    assert "pattern" in defs["DatasetSpec"]["properties"]["train_split"]
