"""Figures of a search: op and magnitude distributions over epochs (the paper's Figure 6), sample grids,
and AWS's pair distribution (heat map, top pairs, stage-2 progress)."""

from __future__ import annotations

import numpy as np

from .. import atomic
from ..distribution import pair_label
from ..params import NO_OP
from ..registry import OP_NAMES


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _integer_ticks(axis) -> None:
    """Whole-number ticks on ``axis``'s x axis (epochs, loops): never 0.5 of an epoch."""
    from matplotlib.ticker import MaxNLocator

    axis.xaxis.set_major_locator(MaxNLocator(integer=True))


def op_colors(count: int) -> list:
    """``count`` (≤ 20) distinct colours: tab20's ten dark shades, then its light ones, so no two
    neighbouring ops share a hue's pair (16 ops: one pink, not two)."""
    plt = _pyplot()
    order = [*range(0, 20, 2), *range(1, 20, 2)]
    if count > len(order):
        raise ValueError(f"at most {len(order)} distinct colours, asked for {count}")
    return [plt.cm.tab20(i) for i in order[:count]]


def schedule_distributions(schedule) -> tuple[list[str], np.ndarray, np.ndarray]:
    """``(ops, op_freq float[E, n_ops], bin_freq float[E, n_bins])``: per epoch, the fraction of
    all sub-policy ops of the epoch's policies that are each op / each magnitude bin."""
    space = schedule[0][0].space
    op_freq = np.zeros((len(schedule), len(space.ops)))
    bin_freq = np.zeros((len(schedule), space.n_bins))
    for e, policies in enumerate(schedule.epochs):
        for policy in policies:
            for sub in policy.sub_policies:
                for choice in sub:
                    op_freq[e, space.ops.index(choice.op)] += 1
                    bin_freq[e, choice.bin] += 1
    return list(space.ops), op_freq / op_freq.sum(1, keepdims=True), bin_freq / bin_freq.sum(1, keepdims=True)


def plot_schedule(schedule, path: str) -> str:
    """Stacked op distribution and magnitude-bin distribution per epoch; writes ``path`` (PNG)."""
    plt = _pyplot()
    ops, op_freq, bin_freq = schedule_distributions(schedule)
    epochs = np.arange(len(schedule))
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 8), sharex=True, layout="constrained")
    colors = op_colors(len(ops))
    bottom_edge = np.zeros(len(schedule))
    for i, op in enumerate(ops):  # one full-width stacked bar per epoch, aligned with the heat map below
        top.bar(epochs, op_freq[:, i], width=1.0, bottom=bottom_edge, color=colors[i], label=op)
        bottom_edge += op_freq[:, i]
    top.set_xlim(-0.5, len(schedule) - 0.5)
    top.set_ylabel("fraction of ops")
    top.set_title("Op distribution of the policies per epoch")
    handles, labels = top.get_legend_handles_labels()  # the legend reads top-down as the stack does
    top.legend(handles[::-1], labels[::-1], loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)
    image = bottom.imshow(
        bin_freq.T,
        aspect="auto",
        origin="lower",
        cmap="viridis",
        extent=(-0.5, len(schedule) - 0.5, -0.5, bin_freq.shape[1] - 0.5),
    )
    bottom.set_ylabel("magnitude bin")
    bottom.set_xlabel("epoch")
    bottom.set_title("Magnitude distribution per epoch")
    _integer_ticks(bottom)
    # Right beside the heat map, where the legend stands beside the bars above.
    fig.colorbar(image, cax=bottom.inset_axes((1.01, 0.0, 0.02, 1.0)), label="fraction of bins")
    atomic.save_figure(fig, path, dpi=100)
    plt.close(fig)
    return path


def sample_caption(params, row: int) -> str:
    """The ops applied to row ``row`` of :class:`~fastpolicy.params.PolicyParams`, one per line,
    in order, each as ``op@bin`` (``op`` alone without a magnitude); ``"no op"`` if none."""
    ops = [
        OP_NAMES[op] if b < 0 else f"{OP_NAMES[op]}@{b}"
        for op, b in zip(params.op[row].tolist(), params.bin[row].tolist())
        if op != NO_OP
    ]
    return "\n".join(ops) or "no op"


def plot_samples(
    images, mean, std, path: str, M: int, per_policy: int = 8, *, epoch: int | None = None, params=None
) -> str:
    """Grid of augmented samples: one row per policy (copy m), ``per_policy`` images each.

    Args:
        images: float [M·N, C, H, W] normalized as the loader outputs, policy-major (rows
            ``m·N … (m+1)·N − 1`` are copy m).
        mean, std: per channel, in [0, 1] units; they undo the normalization.
        path: the PNG to write.
        M: copies (rows of the grid).
        per_policy: images shown per row (at most N).
        epoch: the epoch the batch is from, named in each row's title (None: not named).
        params: the batch's :class:`~fastpolicy.params.PolicyParams` (``params.n == M·N``);
            each image is captioned with its ops (None: no captions).
    """
    plt = _pyplot()
    images = np.asarray(images, dtype=np.float32)
    n = len(images) // M
    if params is not None and params.n != len(images):
        raise ValueError(f"params has {params.n} rows for {len(images)} images")
    per_policy = min(per_policy, n)
    mean = np.asarray(mean, np.float32).reshape(1, -1, 1, 1)
    std = np.asarray(std, np.float32).reshape(1, -1, 1, 1)
    pixels = np.clip(images * std + mean, 0, 1)
    caption_lines = 0 if params is None else max(1, params.k)
    cell_height = 1.3 + 0.12 * caption_lines
    fig, axes = plt.subplots(M, per_policy, figsize=(per_policy * 1.3, M * cell_height + 0.3), squeeze=False)
    for m in range(M):
        for j in range(per_policy):
            picture = pixels[m * n + j].transpose(1, 2, 0)
            axes[m, j].imshow(picture[..., 0] if picture.shape[2] == 1 else picture, cmap="gray", vmin=0, vmax=1)
            axes[m, j].set_xticks([])
            axes[m, j].set_yticks([])
            for spine in axes[m, j].spines.values():
                spine.set_visible(False)
            if params is not None:
                axes[m, j].set_xlabel(sample_caption(params, m * n + j), fontsize=6, linespacing=1.1)
        title = f"policy {m}" + ("" if epoch is None else f" · epoch {epoch}")
        axes[m, 0].set_title(title, fontsize=8, loc="left")
    fig.tight_layout()
    atomic.save_figure(fig, path, dpi=100)
    plt.close(fig)
    return path


def plot_pair_heatmap(distribution, path: str) -> str:
    """The pair distribution p(e1, e2) as a 36 × 36 heat map (rows: first element); writes ``path``."""
    plt = _pyplot()
    names = [el.name for el in distribution.space.elements]
    joint = distribution.joint()
    fig, axis = plt.subplots(figsize=(14, 13), layout="constrained")
    image = axis.imshow(joint, cmap="magma", interpolation="nearest")
    axis.set_xticks(range(len(names)), names, rotation=90, fontsize=9)
    axis.set_yticks(range(len(names)), names, fontsize=9)
    ops = [el.op for el in distribution.space.elements]
    for i in range(1, len(ops)):  # thin lines between ops, so an op's bins read as one block
        if ops[i] != ops[i - 1]:
            axis.axhline(i - 0.5, color="white", linewidth=0.6)
            axis.axvline(i - 0.5, color="white", linewidth=0.6)
    axis.set_xlabel("second element e2")
    axis.set_ylabel("first element e1")
    axis.set_title(f"p(e1, e2); uniform = {1 / joint.size:.2e}")
    fig.colorbar(image, ax=axis, label="probability", shrink=0.8)
    atomic.save_figure(fig, path, dpi=100)
    plt.close(fig)
    return path


def plot_top_pairs(distribution, path: str, k: int = 20) -> str:
    """Horizontal bars of the ``k`` most probable pairs (labelled by :func:`~fastpolicy.distribution.pair_label`,
    as the metrics log writes them), with the uniform probability marked."""
    plt = _pyplot()
    top = distribution.top_pairs(k)
    fig, axis = plt.subplots(figsize=(8, 0.3 * k + 1.2), layout="constrained")
    labels = [pair_label(a, b) for a, b, _ in top][::-1]
    axis.barh(labels, [p for _, _, p in top][::-1], color="tab:blue")
    axis.axvline(1 / distribution.n_elements**2, color="grey", linestyle="--", label="uniform")
    axis.set_xlabel("probability")
    axis.set_title(f"Top {k} op pairs")
    axis.legend(loc="lower right")
    atomic.save_figure(fig, path, dpi=100)
    plt.close(fig)
    return path


def plot_search_progress(history: list[dict], pair_probabilities: dict[str, list[float]], path: str) -> str:
    """AWS stage 2 per loop: reward and baseline, entropy, and the probability of given pairs.

    ``history``: rows with ``loop``, ``reward``, ``baseline``, ``entropy``;
    ``pair_probabilities``: pair label → probability per loop (same length as history).
    """
    plt = _pyplot()
    loops = [row["loop"] for row in history]
    fig, (top, middle, bottom) = plt.subplots(3, 1, figsize=(9, 10), sharex=True, layout="constrained")
    top.plot(loops, [row["reward"] for row in history], "o-", label="reward (val accuracy)")
    top.plot(loops, [row["baseline"] for row in history], "--", label="EMA baseline")
    top.set_ylabel("accuracy")
    top.legend()
    middle.plot(loops, [row["entropy"] for row in history], color="tab:green")
    middle.set_ylabel("entropy of p (nats)")
    styles = ["-", "--", "-.", ":", (0, (5, 1, 1, 1))]  # pairs near uniform overlap: each its own line and marker
    for i, (label, values) in enumerate(pair_probabilities.items()):
        bottom.plot(loops, values, linestyle=styles[i % len(styles)], marker="osv^D"[i % 5], markersize=4, label=label)
    bottom.set_ylabel("probability")
    bottom.set_xlabel("loop")
    _integer_ticks(bottom)
    bottom.legend(fontsize=7, loc="upper left")
    top.set_title("AWS stage 2")
    atomic.save_figure(fig, path, dpi=100)
    plt.close(fig)
    return path
