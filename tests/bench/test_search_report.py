"""The distiller search's section of the report, from hand-written records (no training): auto
beside the best single method and the baseline, its compute, and the proxy's rank fidelity."""

from __future__ import annotations

from benchmarks.plan import student_run, teacher_run
from benchmarks.presets import SEARCH_STUDENT, get_preset
from benchmarks.search_report import search_section
from benchmarks.store import ResultStore
from tests.bench.records import fake_result

GROUP = "frcnn-synth-short"  # two-stage: candidates mar, logit_kd, none


def _search(chosen: str, proxy: dict[str, float], planned: float, measured: float) -> dict:
    distill = {"mar": {"method": "mar"}, "logit_kd": {"method": "logit_kd"}, "none": None}
    return {
        "chosen": chosen,
        "rungs": [{"step": 10, "keep": 2}, {"step": 20, "keep": 1}],
        "leaderboard": [
            {"label": label, "distill": distill[label], "rungs": {"10": {"AP": ap}}}
            for label, ap in proxy.items()
        ],
        "compute": {"budget": 2.0, "planned_multiple": planned, "multiple": measured},
    }


def _section(tmp_path, proxy_by_seed: list[dict[str, float]], auto_ap: list[float]) -> str:
    cpu = get_preset("cpu")
    group = cpu.group(GROUP)
    store = ResultStore(tmp_path / "results")
    fake_result(store, teacher_run(cpu, cpu.teachers[group.teacher]), 0.6)
    full = {"baseline": [0.40, 0.41, 0.42], "mar": [0.50, 0.51, 0.52], "logit_kd": [0.46, 0.47, 0.48]}
    for label, aps in full.items():
        for seed, ap in enumerate(aps):
            fake_result(store, student_run(cpu, group, label, seed), ap)
    for seed, (ap, proxy) in enumerate(zip(auto_ap, proxy_by_seed, strict=True)):
        run = student_run(cpu, group, SEARCH_STUDENT, seed)
        fake_result(store, run, ap)
        rec = store.get(run.key)
        rec["search"] = _search(max(proxy, key=proxy.get), proxy, 1.9, 1.8 + 0.1 * seed)
        store.put(rec)
    return "\n".join(search_section(store, cpu))


def test_auto_beside_the_best_single_method_and_the_baseline(tmp_path):
    faithful = {"mar": 0.3, "logit_kd": 0.2, "none": 0.1}  # the full runs' order
    text = _section(tmp_path, [faithful] * 3, [0.505, 0.515, 0.525])
    row = next(line for line in text.splitlines() if line.startswith(f"| {GROUP} |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1] == "51.50 ± 1.00 (3)"
    assert cells[2] == "mar 51.00 ± 1.00" and cells[3] == "+0.50 (yes)"
    assert cells[4] == "41.00 ± 1.00" and cells[5] == "+10.50 (yes)"  # above twice the spread (2.00)
    assert cells[6] == "1.90x (1.80-2.00x)"
    assert cells[8] == "s0: mar, s1: mar, s2: mar"
    assert "`mar`, `logit_kd`, `none` on two-stage ones" in text
    assert f"- `{GROUP}` s0: rho +1.00 (mar 30.0 / 50.0; logit_kd 20.0 / 46.0; none 10.0 / 40.0)." in text
    assert "- Mean rho over 3 searches: +1.00." in text


def test_a_proxy_that_ranks_backwards_reads_as_negative_fidelity_and_a_loss_as_no(tmp_path):
    backwards = {"mar": 0.1, "logit_kd": 0.2, "none": 0.3}
    text = _section(tmp_path, [backwards] * 3, [0.40, 0.41, 0.42])  # auto picked no KD
    row = next(line for line in text.splitlines() if line.startswith(f"| {GROUP} |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[3] == "-10.00 (no)" and cells[5] == "+0.00 (no)"
    assert cells[8] == "s0: none, s1: none, s2: none"
    assert "- Mean rho over 3 searches: -1.00." in text


def test_no_auto_run_no_section(tmp_path):
    assert search_section(ResultStore(tmp_path / "results"), get_preset("cpu")) == []
