"""The search's figures and the bench chart read at a glance: whole epochs and loops, the
colorbar beside its panel, legible heat-map labels, one way to write a pair, labelled sample
rows, a legend on the bench chart."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from conftest import photo_batch

from fastpolicy import AWSDistribution, Policy, PolicySchedule, sample_policies
from fastpolicy.bench import report
from fastpolicy.distribution import pair_label
from fastpolicy.train import plots

pytest.importorskip("matplotlib")


@pytest.fixture
def figures(monkeypatch):
    """The figures the plot functions close, kept open and drawn, in order."""
    import matplotlib.pyplot as plt

    kept = []

    def keep(fig=None):
        fig.canvas.draw()
        kept.append(fig)

    monkeypatch.setattr(plt, "close", keep)
    yield kept
    for fig in kept:
        plt.figure(fig.number)
        plt.clf()
    monkeypatch.undo()
    plt.close("all")


def _whole(values) -> bool:
    return all(float(v).is_integer() for v in values)


def test_epoch_axis_has_whole_ticks_and_colorbar_beside_its_panel(tmp_path, figures):
    rng = np.random.default_rng(0)
    schedule = PolicySchedule([[Policy.random(rng) for _ in range(2)] for _ in range(2)])
    plots.plot_schedule(schedule, str(tmp_path / "ops.png"))
    assert (tmp_path / "ops.png").stat().st_size > 0
    fig = figures[0]
    bottom = fig.axes[1]
    visible = [t for t in bottom.get_xticks() if -0.5 <= t <= 1.5]
    assert visible and _whole(visible)  # 2 epochs: 0 and 1, not 0.25 steps
    colorbar = next(a for a in [*fig.axes, *bottom.child_axes] if a.get_ylabel() == "fraction of bins")
    panel, bar = bottom.get_window_extent(), colorbar.get_window_extent()  # pixels
    assert panel.x1 <= bar.x0 < panel.x1 + 30  # right of the heat map, not across the figure
    assert bar.y0 >= panel.y0 - 1 and bar.y1 <= panel.y1 + 1


def test_loop_axis_has_whole_ticks(tmp_path, figures):
    history = [{"loop": i, "reward": 0.5, "baseline": 0.5, "entropy": 7.0} for i in range(3)]
    plots.plot_search_progress(history, {pair_label("Invert", "Equalize"): [0.1, 0.2, 0.3]}, str(tmp_path / "p.png"))
    bottom = figures[0].axes[2]
    lo, hi = bottom.get_xlim()
    assert _whole(t for t in bottom.get_xticks() if lo <= t <= hi)


def test_heatmap_labels_are_legible_and_pairs_read_as_in_the_log(tmp_path, figures):
    rng = np.random.default_rng(1)
    distribution = AWSDistribution(rng.normal(size=36), rng.normal(size=(36, 36)))
    plots.plot_pair_heatmap(distribution, str(tmp_path / "heat.png"))
    plots.plot_top_pairs(distribution, str(tmp_path / "top.png"), k=5)
    heat, top = figures[0].axes[0], figures[1].axes[0]
    labels = heat.get_xticklabels()
    assert len(labels) == 36 and min(label.get_fontsize() for label in labels) >= 8
    boxes = [label.get_window_extent() for label in heat.get_yticklabels()]
    assert all(a.y0 >= b.y1 - 1 for a, b in itertools.pairwise(boxes))  # rows go down: no label overlaps the next
    written = [label.get_text() for label in top.get_yticklabels()][::-1]
    assert written == [pair_label(a, b) for a, b, _ in distribution.top_pairs(5)]


def test_pair_label_is_the_metrics_spelling():
    assert pair_label("ShearX@3", "Invert") == "ShearX@3+Invert"


def test_samples_rows_name_epoch_and_ops(tmp_path, figures):
    images = photo_batch(2 * 3, 16, 16).astype(np.float32).transpose(0, 3, 1, 2) / 255
    policies = [Policy([[("Invert", 0), ("Rotate", 4)]]), Policy([[("Equalize", 0, 0.0)]])]
    params = sample_policies(policies, 3, np.random.default_rng(2))
    plots.plot_samples(images, [0.0] * 3, [1.0] * 3, str(tmp_path / "s.png"), 2, epoch=7, params=params)
    axes = figures[0].axes
    assert [axes[i].get_title(loc="left") for i in (0, 3)] == ["policy 0 · epoch 7", "policy 1 · epoch 7"]
    assert axes[0].get_xlabel() == "Invert\nRotate@4" and axes[3].get_xlabel() == "no op"
    plots.plot_samples(images, [0.0] * 3, [1.0] * 3, str(tmp_path / "old.png"), 2)  # the old call still works
    assert figures[1].axes[0].get_title(loc="left") == "policy 0" and figures[1].axes[0].get_xlabel() == ""
    with pytest.raises(ValueError, match="params has 6 rows for 4 images"):
        plots.plot_samples(images[:4], [0.0] * 3, [1.0] * 3, str(tmp_path / "bad.png"), 2, params=params)


def test_bench_chart_has_a_legend(tmp_path, figures):
    rows = [
        {"scenario": "stage", "case": "blend", "contender": "fastpolicy (native)", "images_per_s": 4000.0},
        {"scenario": "stage", "case": "blend", "contender": "DALI select", "images_per_s": 900.0},
    ]
    report.bar_chart(rows, str(tmp_path / "bench.png"), "bench")
    legend = figures[0].legends[0]
    assert [t.get_text() for t in legend.get_texts()] == ["fastpolicy", "other contender"]
    bars = figures[0].axes[0].patches
    colors = {tuple(h.get_facecolor()) for h in legend.legend_handles}
    assert {tuple(b.get_facecolor()) for b in bars} == colors


def test_op_colours_are_distinct_and_the_legend_reads_as_the_stack(tmp_path, figures):
    import matplotlib.colors as mcolors

    colours = plots.op_colors(16)
    assert len({mcolors.to_hex(c) for c in colours}) == 16
    pinks = [c for c in colours if 0.8 < mcolors.rgb_to_hsv(c[:3])[0] < 0.97 and mcolors.rgb_to_hsv(c[:3])[1] > 0.2]
    assert len(pinks) <= 1  # the near-identical pinks of before
    rng = np.random.default_rng(0)
    schedule = PolicySchedule([[Policy.random(rng) for _ in range(4)] for _ in range(3)])
    plots.plot_schedule(schedule, str(tmp_path / "ops.png"))
    top = figures[0].axes[0]
    labels = [t.get_text() for t in top.get_legend().get_texts()]
    ops, _, _ = plots.schedule_distributions(schedule)
    assert labels == ops[::-1]  # the first op sits at the bottom of each bar and of the legend


def test_overlapping_pair_lines_stay_apart(tmp_path, figures):
    history = [{"loop": i, "reward": 0.5, "baseline": 0.5, "entropy": 7.0} for i in range(3)]
    same = [1 / 1296] * 3
    pairs = {pair_label("Invert", f"Rotate@{b}"): same for b in (3, 6, 9)} | {pair_label("Equalize", "Invert"): same}
    plots.plot_search_progress(history, pairs, str(tmp_path / "p.png"))
    lines = figures[0].axes[2].get_lines()
    assert len({(str(line.get_linestyle()), line.get_marker()) for line in lines}) == len(pairs)


def test_show_names_ops_without_a_magnitude_alone():
    from fastpolicy.show import _policy_text

    policy = {"space": "adversarial", "sub_policies": [[{"op": "Invert", "bin": 5}, {"op": "Rotate", "bin": 3}]]}
    assert _policy_text(policy) == "Invert → Rotate@3"
