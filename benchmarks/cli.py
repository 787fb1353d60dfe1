"""``mar bench quality|perf|report|tune|calibrate|diagnose|dataset-check|image-decode|data-pipeline|soak``: the benchmarks
(``benchmarks``).

Results are cached in ``benchmarks/results/`` (one committed JSON file per run) and
``BENCHMARKS.md`` is generated from them; work folders (datasets, teachers, runs) go to
``benchmarks/cache/``.
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
from pathlib import Path
from typing import Any

import torch

from benchmarks.calibrate import calibrate, format_calibration
from benchmarks.coco_gen import COCO_TRAIN2017
from benchmarks.data_pipeline import format_data_pipeline, run_data_pipeline
from benchmarks.dataset_check import format_dataset_check, run_dataset_check
from benchmarks.diagnose import diagnose, format_diagnosis
from benchmarks.equal_tune import GRID_POINTS, method_grid, plan_pick_seeds, plan_points
from benchmarks.image_decode import format_image_decode, run_image_decode
from benchmarks.perf import PARTS, PERF_PRESETS, run_perf
from benchmarks.perf_format import format_part
from benchmarks.presets import STUDENTS, get_preset, student_distill
from benchmarks.quality import Runner, prepare_dataset, run_in_order, run_quality
from benchmarks.report import write_report
from benchmarks.roster import plan_runs
from benchmarks.slow_clients import format_slow_clients, run_slow_clients
from benchmarks.soak import SoakConfig, run_soak
from benchmarks.soak_format import format_soak
from benchmarks.store import DEFAULT_CACHE, DEFAULT_RESULTS, REPO_ROOT, ResultStore
from benchmarks.tune import plan_tune, run_tune
from benchmarks.tune_points import CALIBRATION_POINTS, SCALES, parse_point
from benchmarks.warm_start import run_state
from mar_core.atomic import atomic_write_json
from mar_core.cli.argtypes import csv, csv_ints, positive_float, positive_int
from mar_core.errors import SpecError
from mar_core.methods import METHODS
from mar_core.names import is_two_stage


def _command() -> str:
    return (
        "mar " + " ".join(shlex.quote(a) for a in sys.argv[1:])
        if sys.argv[1:2] == ["bench"]
        else "mar bench (library call)"
    )


def _add_grid_options(p: argparse.ArgumentParser) -> None:
    """The options of the grid commands (``tune``, ``equal-tune``) beyond their selection."""
    p.add_argument("--max-runs", type=positive_int, default=None, help="stop after K trainings")
    p.add_argument("--list", action="store_true", help="print the runs (cached / missing) and run nothing")
    p.add_argument("--no-report", action="store_true", help="do not regenerate the report afterwards")
    p.add_argument(
        "--threads", type=positive_int, default=None, help="torch threads per run (default: torch's)"
    )
    _add_paths(p)
    _add_report_out(p)


def _add_paths(p: argparse.ArgumentParser, cache: bool = True) -> None:
    p.add_argument(
        "--results", type=Path, default=DEFAULT_RESULTS, help="results folder (default: %(default)s)"
    )
    if cache:
        p.add_argument(
            "--cache",
            type=Path,
            default=DEFAULT_CACHE,
            help="datasets, teachers and work folders (default: %(default)s)",
        )


def _add_report_out(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--out", type=Path, default=REPO_ROOT / "BENCHMARKS.md", help="report file (default: %(default)s)"
    )


def register(add) -> None:
    """Add ``mar bench quality``, ``perf``, ``report``, ``tune``, ``calibrate``, ``diagnose``,
    ``dataset-check`` and ``soak``; ``add(name)`` returns a command's parser."""
    p = add("bench")
    bench = p.add_subparsers(dest="bench_command", required=True, metavar="ACTION")

    q = bench.add_parser("quality", help="train the missing runs of a preset (cached runs are skipped)")
    q.add_argument("--preset", default="cpu", help="cpu | gpu | smoke (default: %(default)s)")
    q.add_argument("--group", action="append", default=None, help="only this group (repeatable)")
    q.add_argument("--students", type=csv, default=None, help="only these students, e.g. baseline,mar")
    q.add_argument("--seeds", type=csv_ints, default=None, help="only these seeds, e.g. 0")
    q.add_argument(
        "--max-runs",
        type=positive_int,
        default=None,
        help="stop after K trainings (a teacher being trained counts as one)",
    )
    mode = q.add_mutually_exclusive_group()
    mode.add_argument(
        "--only-missing", action="store_true", default=True, help="run only what is not cached (the default)"
    )
    mode.add_argument(
        "--rerun", action="store_true", help="run the selection again, replacing cached results"
    )
    q.add_argument("--list", action="store_true", help="print the plan (cached / missing) and run nothing")
    q.add_argument(
        "--teachers-only",
        action="store_true",
        help="train and publish the selected groups' teachers (benchmarks/teachers/), run no student",
    )
    q.add_argument("--no-report", action="store_true", help="do not regenerate the report afterwards")
    q.add_argument(
        "--threads",
        type=positive_int,
        default=None,
        help="torch threads per run (default: torch's; 1 suits a machine shared with other jobs)",
    )
    _add_paths(q)
    _add_report_out(q)
    q.set_defaults(handler=_quality)

    f = bench.add_parser("perf", help="speed: training steps, relation loss, masks, API latency")
    f.add_argument("--preset", default="cpu", help="cpu | gpu | smoke (default: %(default)s)")
    f.add_argument("--parts", type=csv, default=None, help=f"subset of {','.join(PARTS)}")
    f.add_argument("--no-report", action="store_true", help="do not regenerate the report afterwards")
    _add_paths(f, cache=False)
    _add_report_out(f)
    f.set_defaults(handler=_perf)

    r = bench.add_parser("report", help="write BENCHMARKS.md from the cached results")
    r.add_argument("--preset", action="append", default=None, help="presets to report (default: cpu, gpu)")
    _add_paths(r, cache=False)
    _add_report_out(r)
    r.set_defaults(handler=_report)

    t = bench.add_parser("tune", help="grid over MAR's hyper-parameters on the synthetic short group, 1 seed")
    t.add_argument("--preset", default="cpu", help="cpu | gpu | smoke (default: %(default)s)")
    t.add_argument(
        "--point",
        action="append",
        default=None,
        metavar="LABEL",
        help="only this grid point, by its label as --list prints it, e.g. beta=0.1 (repeatable)",
    )
    _add_grid_options(t)
    t.set_defaults(handler=_tune)

    e = bench.add_parser(
        "equal-tune",
        help="the same three-point search for every KD method (weights x1, x3, then x9 or x1/3) on the "
        "short group's seed 0; "
        "--picks runs each method's best point on the other seeds",
    )
    e.add_argument("--preset", default="cpu", help="cpu | gpu | smoke (default: %(default)s)")
    e.add_argument(
        "--methods", type=csv, default=None, help=f"subset of {','.join(CALIBRATION_POINTS)}, in run order"
    )
    e.add_argument(
        "--scales",
        type=csv,
        default=None,
        help="only these grid points, e.g. 3 or 0.333 (as --list prints them after the x)",
    )
    e.add_argument("--picks", action="store_true", help="run the picked points on the other seeds")
    _add_grid_options(e)
    e.set_defaults(handler=_equal_tune)

    c = bench.add_parser(
        "calibrate", help="size of every KD term against the classification loss, with a group's teacher"
    )
    c.add_argument("--preset", default="cpu", help="cpu | gpu | smoke (default: %(default)s)")
    c.add_argument("--group", required=True, help="the group whose teacher, student and data are used")
    c.add_argument("--methods", type=csv, default=None, help=f"subset of {','.join(METHODS)}")
    c.add_argument("--batches", type=positive_int, default=4, help="batches averaged (default: %(default)s)")
    c.add_argument("--target", type=float, default=0.5, help="ratio the suggested weights aim at")
    c.add_argument("--threads", type=positive_int, default=None, help="torch threads (default: torch's)")
    _add_paths(c)
    c.set_defaults(handler=_calibrate)

    g = bench.add_parser(
        "diagnose", help="per-level parts, gradient ratios and adapter init of the mask-guided loss (cheap)"
    )
    g.add_argument("--preset", default="cpu", help="cpu | gpu | smoke (default: %(default)s)")
    g.add_argument("--group", required=True, help="the group whose teacher, student and data are used")
    g.add_argument("--batches", type=positive_int, default=4, help="batches measured (default: %(default)s)")
    g.add_argument(
        "--steps", type=positive_int, default=60, help="training steps per adapter arm (default: %(default)s)"
    )
    g.add_argument("--threads", type=positive_int, default=None, help="torch threads (default: torch's)")
    g.add_argument("--no-report", action="store_true", help="do not regenerate the report afterwards")
    _add_paths(g)
    _add_report_out(g)
    g.set_defaults(handler=_diagnose)

    d = bench.add_parser(
        "dataset-check", help="time and peak memory of checking a COCO train2017-sized annotation file"
    )
    d.add_argument("--images", type=positive_int, default=COCO_TRAIN2017["images"])
    d.add_argument("--boxes", type=positive_int, default=COCO_TRAIN2017["boxes"])
    d.add_argument("--seed", type=int, default=0, help="of the generated file (default: %(default)s)")
    d.add_argument("--no-report", action="store_true", help="do not regenerate the report afterwards")
    _add_paths(d)
    _add_report_out(d)
    d.set_defaults(handler=_dataset_check)

    sc = bench.add_parser(
        "slow-clients",
        help="/healthz latency of mar api while 300 slow connections trickle, and their closing",
    )
    sc.add_argument("--connections", type=positive_int, default=300)
    sc.add_argument("--no-report", action="store_true", help="do not regenerate the report afterwards")
    _add_paths(sc, cache=False)
    _add_report_out(sc)
    sc.set_defaults(handler=_slow_clients)

    m = bench.add_parser(
        "image-decode", help="images per second the dataset check decodes, at 256 px and 1000 px"
    )
    m.add_argument("--no-report", action="store_true", help="do not regenerate the report afterwards")
    _add_paths(m)
    _add_report_out(m)
    m.set_defaults(handler=_image_decode)

    dp = bench.add_parser(
        "data-pipeline", help="training images per second: decoders, and the loader with 0-2 worker processes"
    )
    dp.add_argument("--no-report", action="store_true", help="do not regenerate the report afterwards")
    _add_paths(dp)
    _add_report_out(dp)
    dp.set_defaults(handler=_data_pipeline)

    k = bench.add_parser(
        "soak",
        help="tiny jobs through PostgreSQL + Redis while workers are SIGKILLed and the broker restarts",
    )
    k.add_argument("--jobs", type=positive_int, default=200, help="jobs submitted (default: %(default)s)")
    k.add_argument("--workers", type=positive_int, default=2, help="worker processes (default: %(default)s)")
    k.add_argument(
        "--kill-every",
        type=positive_float,
        nargs=2,
        default=(20.0, 40.0),
        metavar=("MIN", "MAX"),
        help="SIGKILL a random worker every uniform(MIN, MAX) seconds (default: 20 40)",
    )
    k.add_argument(
        "--timeout",
        type=positive_float,
        default=3600.0,
        help="seconds for every job to end (default: %(default)s)",
    )
    k.add_argument(
        "--iterations", type=positive_int, default=4, help="training steps a job (default: %(default)s)"
    )
    k.add_argument("--seed", type=int, default=0, help="of the kill times and victims (default: %(default)s)")
    k.add_argument(
        "--b-share",
        type=float,
        default=0.25,
        help="share of the jobs project b submits after project a's (default: %(default)s)",
    )
    k.add_argument(
        "--b-high-every",
        type=int,
        default=4,
        help='every Nth job of project b has priority "high" (0: none; default: %(default)s)',
    )
    k.add_argument("--no-report", action="store_true", help="do not regenerate the report afterwards")
    _add_paths(k)
    _add_report_out(k)
    k.set_defaults(handler=_soak)


def _preset(name: str):
    try:
        return get_preset(name)
    except KeyError as e:
        raise SpecError(str(e.args[0]), param="--preset") from None


def _check_group(preset, name: str) -> None:
    """SpecError naming ``--group`` when ``preset`` has no group ``name``."""

    if name not in preset.group_names:
        raise SpecError(
            f"preset {preset.name} has no group {name!r}; groups: {', '.join(preset.group_names)}",
            param="--group",
        )


def _set_threads(threads: int | None) -> None:
    if threads:
        torch.set_num_threads(threads)


def _print_event(what: str, run, record) -> None:
    name = f"{run.kind} {run.group}/{run.label} seed {run.seed} [{run.key[:12]}]"
    if what == "done" and record is not None:
        ap = record["eval"].get("AP", 0.0) * 100
        print(f"done    {name}: AP {ap:.2f}, {record['wall_seconds']:.0f} s", flush=True)
    elif what == "start":
        print(f"start   {name}", flush=True)
    elif what == "busy":
        print(f"busy    {name} (another process holds it; skipped)", flush=True)
    elif what == "failed":
        print(f"FAILED  {name}: {(record or {}).get('error')}", flush=True)


def _write_report(args: argparse.Namespace, presets: list[str] | None = None) -> None:
    path = write_report(args.results, args.out, presets)
    print(f"report: {path}")


def _quality(args: argparse.Namespace) -> int:
    preset = _preset(args.preset)
    for g in args.group or []:
        _check_group(preset, g)

    unknown = [s for s in args.students or [] if s not in STUDENTS and parse_point(s) is None]
    if unknown:
        raise SpecError(
            f"unknown student(s) {', '.join(unknown)}; valid: {', '.join(STUDENTS)}, or a tuning point's "
            "label ('cwd_head x9')",
            param="--students",
        )
    store = ResultStore(args.results)
    if args.list:
        runs = plan_runs(store, preset, args.group, args.students, args.seeds)
        states = [run_state(store, preset, run) for run in runs]
        for run, state in zip(runs, states, strict=True):
            print(f"{state:7} {run.group}/{run.label} seed {run.seed} [{run.key[:12]}]")
        stale = states.count("stale")
        print(
            f"{len(states) - states.count('cached')} of {len(runs)} runs missing"
            + (f" ({stale} stale: warm-started from an earlier start)" if stale else "")
            + " (best peers resolved from the results cached now)"
        )
        return 0

    _set_threads(args.threads)
    summary = run_quality(
        preset,
        store,
        args.cache,
        groups=args.group,
        students=args.students,
        seeds=args.seeds,
        max_runs=args.max_runs,
        rerun=args.rerun,
        teachers_only=args.teachers_only,
        command=_command(),
        on_event=_print_event,
    )
    print(
        f"ran {len(summary.ran)} student runs, trained {len(summary.teachers_trained)} teachers, "
        f"{len(summary.cached)} cached, {len(summary.busy)} busy, {len(summary.failed)} failed"
        + (" (stopped at --max-runs)" if summary.stopped_at_max_runs else "")
    )
    if not args.no_report and preset.name != "smoke":
        _write_report(args)
    return 1 if summary.failed else 0


def _perf(args: argparse.Namespace) -> int:
    if args.preset not in PERF_PRESETS:
        raise SpecError(
            f"unknown perf preset {args.preset!r}; valid: {', '.join(PERF_PRESETS)}", param="--preset"
        )
    parts = tuple(args.parts or PARTS)
    bad = [p for p in parts if p not in PARTS]
    if bad:
        raise SpecError(f"unknown perf part(s) {', '.join(bad)}; valid: {', '.join(PARTS)}", param="--parts")

    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise

    def show(part: str, result: dict) -> None:
        print("\n".join(format_part(part, result)), flush=True)
        print(flush=True)

    path, _ = run_perf(args.preset, args.results, parts, command=_command(), on_part=show)
    print(f"perf results: {path}")
    if not args.no_report and args.preset != "smoke":
        _write_report(args)
    return 0


def _report(args: argparse.Namespace) -> int:
    _write_report(args, args.preset)
    return 0


def _tune(args: argparse.Namespace) -> int:
    preset = _preset(args.preset)
    store = ResultStore(args.results)
    runs = plan_tune(preset)
    labels = [run.label for run in runs]
    unknown = [p for p in args.point or [] if p not in labels]
    if unknown:
        raise SpecError(
            f"unknown grid point(s) {', '.join(map(repr, unknown))}; valid: {', '.join(labels)}",
            param="--point",
        )
    if args.list:
        for run in runs:
            print(
                f"{'cached ' if store.has(run.key) else 'missing'} {run.label} [{run.key[:12]}] "
                f"{json.dumps(run.extra['params'])}"
            )
        return 0
    _set_threads(args.threads)
    summary = run_tune(
        preset,
        store,
        args.cache,
        max_runs=args.max_runs,
        points=args.point,
        command=_command(),
        on_event=_print_event,
    )
    print(f"ran {len(summary.ran)} tuning runs, {len(summary.cached)} cached, {len(summary.failed)} failed")
    if not args.no_report and preset.name != "smoke":
        _write_report(args)
    return 1 if summary.failed else 0


def _equal_tune(args: argparse.Namespace) -> int:
    preset = _preset(args.preset)
    store = ResultStore(args.results)
    methods = args.methods
    unknown = [m for m in methods or [] if m not in CALIBRATION_POINTS]
    if unknown:
        raise SpecError(
            f"unknown method(s) {', '.join(unknown)}; valid: {', '.join(CALIBRATION_POINTS)}",
            param="--methods",
        )
    if args.scales:
        valid = {f"{s:.3g}" for s in SCALES}
        if not set(args.scales) <= valid:
            raise SpecError(f"--scales: valid: {', '.join(sorted(valid, key=float))}", param="--scales")

    def planned() -> list[Any]:
        if args.picks:
            return plan_pick_seeds(store, preset, methods)
        runs = plan_points(store, preset, methods)  # in the order asked for
        return [r for r in runs if not args.scales or f"{r.extra['scale']:.3g}" in args.scales]

    if args.list:
        for run in planned():
            print(
                f"{'cached ' if store.has(run.key) else 'missing'} {run.label} seed {run.seed} [{run.key[:12]}]"
            )
        if not args.picks:
            waiting = [
                m for m in methods or CALIBRATION_POINTS if len(method_grid(store, preset, m)) < GRID_POINTS
            ]
            for method in waiting:
                print(f"waits   {method}: third point (x9 or x0.333) once x1 and x3 are in")
        return 0
    _set_threads(args.threads)
    seen: set[str] = set()
    ran = cached = failed = 0
    # a second pass: the third points are decided by the first pass's x1 and x3
    for _ in range(1 if args.picks else 2):
        runs = [r for r in planned() if r.key not in seen]
        seen |= {r.key for r in runs}
        if not runs or failed:
            break
        budget = None if args.max_runs is None else max(args.max_runs - ran, 0)
        summary = run_in_order(
            preset, store, args.cache, runs, max_runs=budget, command=_command(), on_event=_print_event
        )
        ran, cached, failed = (
            ran + len(summary.ran),
            cached + len(summary.cached),
            failed + len(summary.failed),
        )
    print(f"ran {ran} runs, {cached} cached, {failed} failed")
    if not args.no_report and preset.name != "smoke":
        _write_report(args)
    return 1 if failed else 0


def _calibrate(args: argparse.Namespace) -> int:
    preset = _preset(args.preset)
    _check_group(preset, args.group)
    methods = tuple(args.methods or METHODS)
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise SpecError(
            f"unknown method(s) {', '.join(unknown)}; valid: {', '.join(METHODS)}", param="--methods"
        )
    _set_threads(args.threads)
    found = _teacher_and_data(args, preset)
    if found is None:
        return 1
    teacher, data_dir = found
    group = preset.group(args.group)
    two_stage = is_two_stage(group.student_model["arch"])
    result = calibrate(
        preset,
        args.group,
        teacher,
        data_dir,
        methods=methods,
        batches=args.batches,
        target=args.target,
        distill={m: student_distill(m, two_stage) or {} for m in methods},
    )
    result["command"] = _command()
    path = Path(args.results) / f"calibrate-{preset.name}-{args.group}.json"
    atomic_write_json(path, result)
    print("\n".join(format_calibration(result)))
    print(f"calibration: {path}")
    return 0


def _teacher_and_data(args: argparse.Namespace, preset) -> tuple[Any, Path] | None:
    """The group's published teacher (trained first when missing) and its dataset folder; None
    (after saying so) while another process trains that teacher."""
    store = ResultStore(args.results)
    runner = Runner(preset, store, args.cache, command=_command(), on_event=_print_event)
    teacher = runner.ensure_teacher(args.group)
    if teacher is None:
        print("the group's teacher is being trained by another process; try again later", file=sys.stderr)
        return None
    return teacher, prepare_dataset(preset.datasets[preset.group(args.group).data], args.cache)


def _diagnose(args: argparse.Namespace) -> int:
    preset = _preset(args.preset)
    _check_group(preset, args.group)
    _set_threads(args.threads)
    found = _teacher_and_data(args, preset)
    if found is None:
        return 1
    teacher, data_dir = found
    result = diagnose(preset, args.group, teacher, data_dir, batches=args.batches, steps=args.steps)
    result["command"] = _command()
    path = Path(args.results) / f"diagnose-{preset.name}-{args.group}.json"
    atomic_write_json(path, result)
    print("\n".join(format_diagnosis(result)))
    print(f"diagnosis: {path}")
    if not args.no_report and preset.name != "smoke":
        _write_report(args)
    return 0


def _dataset_check(args: argparse.Namespace) -> int:
    path, result = run_dataset_check(
        args.results, args.cache, images=args.images, boxes=args.boxes, seed=args.seed, command=_command()
    )
    print("\n".join(format_dataset_check(result)))
    print(f"dataset-check result: {path}")
    if not args.no_report:
        _write_report(args)
    return 0


def _slow_clients(args: argparse.Namespace) -> int:
    path, result = run_slow_clients(args.results, connections=args.connections, command=_command())
    print("\n".join(format_slow_clients(result)))
    print(f"slow-clients result: {path}")
    if not args.no_report:
        _write_report(args)
    return 0


def _data_pipeline(args: argparse.Namespace) -> int:
    path, result = run_data_pipeline(args.results, args.cache, command=_command())
    print("\n".join(format_data_pipeline(result)))
    print(f"data-pipeline result: {path}")
    if not args.no_report:
        _write_report(args)
    return 0


def _image_decode(args: argparse.Namespace) -> int:
    path, result = run_image_decode(args.results, args.cache, command=_command())
    print("\n".join(format_image_decode(result)))
    print(f"image-decode result: {path}")
    if not args.no_report:
        _write_report(args)
    return 0


def _soak(args: argparse.Namespace) -> int:
    lo, hi = args.kill_every
    if lo > hi:
        raise SpecError(f"--kill-every MIN MAX: {lo:g} is above {hi:g}", param="--kill-every")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
    cfg = SoakConfig(
        jobs=args.jobs,
        workers=args.workers,
        kill_every=(lo, hi),
        timeout=args.timeout,
        iterations=args.iterations,
        seed=args.seed,
        b_share=args.b_share,
        b_high_every=args.b_high_every,
    )
    path, result = run_soak(cfg, args.results, args.cache / "soak", command=_command())
    print("\n".join(format_soak(result)))
    for name, problems in result["verdict"]["failures"].items():
        print(f"\n{name}:\n  " + "\n  ".join(problems), file=sys.stderr)
    print(f"soak result: {path}")
    if not args.no_report:
        _write_report(args)
    return 0 if all(result["verdict"]["checks"].values()) else 1
