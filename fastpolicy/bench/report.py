"""Tables, bar charts and the results section of ``docs/benchmarks.md``, from ``fastpolicy bench`` JSON.

python -m fastpolicy.bench.report            # rewrite docs/benchmarks.md's section from benchmarks/results/bench_*.json
"""

from __future__ import annotations

import argparse
import json
import os

BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"
TITLES = {
    "decode": "1. Decode + random-resized-crop + flip (M = 1)",
    "policy": "2. The same plus a per-sample standard policy (the same one in every contender)",
    "transform": "3. PolicyAugment as torchvision's drop-in in a DataLoader (ImageFolder; crop, flip, policy)",
    "shards": "4. The same images as a folder, webdataset and TFRecord shards (fastpolicy's loader)",
    "stage": "5. The policy stage alone, pre-decoded batches",
    "training": "6. ResNet-50 training step (bf16, channels-last) fed by the loader",
    "host": "7. The loader's host time per batch (besides DALI's run and the stage's compute)",
}


def group_key(row: dict) -> tuple:
    """Rows compared with each other: same scenario, case and M."""
    return row["scenario"], row.get("case"), row.get("M")


def add_ratios(rows: list[dict]) -> list[dict]:
    """``ratio_to_fastpolicy``: images/s over the first fastpolicy row of the same group."""
    reference: dict[tuple, float] = {}
    for row in rows:
        if row["contender"].startswith("fastpolicy") or row["scenario"] == "training":
            reference.setdefault(group_key(row), row["images_per_s"])
    for row in rows:
        ref = reference.get(group_key(row))
        row["ratio_to_fastpolicy"] = None if not ref else row["images_per_s"] / ref
    return rows


def table(rows: list[dict]) -> str:
    """A Markdown table per scenario: case, M, contender, images/s, ratio to fastpolicy."""
    lines = []
    for scenario, title in TITLES.items():
        chosen = [r for r in rows if r["scenario"] == scenario]
        if not chosen:
            continue
        lines += [
            "",
            f"**{title}**",
            "",
            "| case | M | contender | images/s | ratio to fastpolicy |",
            "|---|---|---|---|---|",
        ]
        for r in chosen:
            ratio = "—" if r["ratio_to_fastpolicy"] is None else f"{r['ratio_to_fastpolicy']:.2f}"
            extra = ""
            if "host_ms_per_batch" in r:
                parts = ", ".join(f"{k} {v:.2f}" for k, v in r["parts_ms"].items())
                busy = f"; {r['busy_cores']:.2f} cores busy" if "busy_cores" in r else ""
                extra = f" (host {r['host_ms_per_batch']:.2f} ms per batch; ms: {parts}{busy})"
            if "loader_overhead_percent" in r:
                extra = f" (loader overhead {r['loader_overhead_percent']:.1f} %, peak {r['peak_memory_gib']:.1f} GiB)"
            lines.append(
                f"| {r.get('case') or '—'} | {r.get('M') or '—'} | {r['contender']}{extra} | "
                f"{r['images_per_s']:,.0f} | {ratio} |"
            )
    return "\n".join(lines).strip() + "\n"


FASTPOLICY_COLOR, OTHER_COLOR = "tab:orange", "tab:blue"
"""Bar colours of the chart: fastpolicy's rows, every other contender's."""


def bar_chart(rows: list[dict], path: str, title: str) -> str:
    """Horizontal bars of images/s (log scale) per group, fastpolicy's bars highlighted (see the legend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    labels, values, colors = [], [], []
    for row in rows:
        case = f"{row['scenario']}/{row.get('case') or ''}" + (f" M={row['M']}" if row.get("M") else "")
        labels.append(f"{case}: {row['contender']}")
        values.append(row["images_per_s"])
        colors.append(FASTPOLICY_COLOR if row["contender"].startswith("fastpolicy") else OTHER_COLOR)
    fig, axis = plt.subplots(figsize=(11, 0.28 * len(rows) + 1.8), layout="constrained")
    axis.barh(labels[::-1], values[::-1], color=colors[::-1])
    axis.set_xscale("log")
    axis.set_xlabel("images/s (log scale)")
    axis.tick_params(axis="y", labelsize=7)
    axis.set_title(title)
    handles = [Patch(color=FASTPOLICY_COLOR, label="fastpolicy"), Patch(color=OTHER_COLOR, label="other contender")]
    fig.legend(handles=handles, loc="outside upper right", ncols=2, fontsize=8)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def describe_machine(record: dict) -> str:
    machine = record["machine"]
    gpu = machine.get("gpu")
    where = f"{machine['cpu']}, {machine['cores']} cores" + (f", {gpu['name']}" if gpu else ", no GPU")
    load, before = machine.get("load_average"), machine.get("load_average_at_start")
    if load:
        # other work shared the machine: before the run more than half the cores were busy, or
        # (no figure from before) at its end more than the cores the bench itself keeps busy
        loaded = before[0] > machine["cores"] / 2 if before else load[1] > machine["cores"]
        busy = " — a loaded machine: read the ratios" if loaded else ""
        start = f"{before[0]:.1f} / {before[1]:.1f} / {before[2]:.1f} at the start, " if before else ""
        end = f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} at the end"
        where += f" (load average over 1 / 5 / 15 min: {start}{end}{busy})"
    settings = record["settings"]
    return (
        f"{where}; {record['date'][:10]}; `{record['command']}`; N = {settings['batch']}, "
        f"{settings['workers']} DataLoader workers, {settings['threads']} DALI threads, medians of "
        f"{settings['repeats']} runs after {settings['warmup']} warm-up batches"
    )


def readme_section(results_dir: str) -> str:
    """Markdown for every ``bench_*.json`` in ``results_dir`` (CPU first)."""
    parts = []
    for name in sorted(os.listdir(results_dir), key=lambda n: (n != "bench_cpu.json", n)):
        if not (name.startswith("bench_") and name.endswith(".json")):
            continue
        with open(os.path.join(results_dir, name)) as handle:
            record = json.load(handle)
        device = "GPU" if record["settings"]["device"] == "gpu" else "CPU"
        parts.append(
            f"#### {device}: {describe_machine(record)}\n\n"
            f"From `benchmarks/results/{name}` (chart: `{name[:-5]}.png`).\n\n{table(record['results'])}"
        )
    return "\n".join(parts)


def update_readme(readme: str, results_dir: str) -> None:
    """Replace the text between the bench markers of ``readme`` with :func:`readme_section`."""
    with open(readme) as handle:
        text = handle.read()
    if BEGIN not in text or END not in text:
        raise ValueError(f"{readme} has no {BEGIN} … {END} markers")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    with open(readme, "w") as handle:
        handle.write(f"{head}{BEGIN}\n{readme_section(results_dir)}{END}{tail}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--readme", default=os.path.join("docs", "benchmarks.md"), help="the page to update")
    parser.add_argument("--results", default=os.path.join("benchmarks", "results"))
    args = parser.parse_args(argv)
    update_readme(args.readme, args.results)
    print(f"updated {args.readme} from {args.results}")


if __name__ == "__main__":
    main()


__all__ = ["BEGIN", "END", "add_ratios", "bar_chart", "readme_section", "table", "update_readme"]
