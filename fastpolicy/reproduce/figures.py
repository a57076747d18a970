"""The studies' figures in the README and the docs, generated from the committed records, so no
quoted number can drift from its JSON (``python -m fastpolicy.reproduce.figures`` rewrites them;
a test fails when a page differs from what this module makes of the records).

* Blocks ``<!-- record: NAME -->`` … ``<!-- /record -->`` hold the committed table
  ``benchmarks/results/reproduce/NAME`` (a study's ``.md``), verbatim.
* The README's lines between ``<!-- studies:start -->`` and ``<!-- studies:end -->`` are
  :func:`headline` of the records there.
"""

from __future__ import annotations

import json
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RESULTS = os.path.join(ROOT, "benchmarks", "results", "reproduce")
"""The committed study records."""
PAGES = (os.path.join(ROOT, "README.md"), os.path.join(ROOT, "docs", "reproductions.md"))
"""The pages that quote them."""

_BLOCK = re.compile(r"(<!-- record: (?P<name>[\w./-]+) -->\n)(?P<body>.*?)(<!-- /record -->)", re.S)
START, END = "<!-- studies:start -->", "<!-- studies:end -->"


def _load(results: str, name: str) -> dict | None:
    path = os.path.join(results, name)
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def headline(results: str = RESULTS) -> str:
    """One Markdown bullet per committed record (regime, adversarial, aws), its figures read from
    the JSON: what was chosen or found, with the intervals and verdicts the record holds."""
    lines = []
    regime = _load(results, "regime.json")
    if regime is not None:
        cells = {c["cell"]: c for c in regime["cells"]}
        chosen = cells.get(regime["chosen"]) if regime["chosen"] else None
        if chosen is None:
            lines.append(f"- **Regime sweep** ({regime['date'][:10]}): {regime['verdict']}.")
        else:
            rule, failed = chosen["rule"], [c for c in regime["cells"] if not c["rule"]["passed"]]
            gains = ", ".join(f"{g:+.2f}" for g in rule["gains"])
            lines.append(
                f"- **Regime sweep** ({regime['date'][:10]}, pre-registered rule): the studies run on "
                f"{chosen['images']} Fashion-MNIST images for {chosen['epochs']} epochs (width {chosen['width']}), "
                f"where the baseline over-fits by {rule['overfit_points']:.1f} points (test − train error) and "
                f"TrivialAugmentWide lowers test error by {gains} points in its {len(rule['gains'])} seeds"
                + (
                    "; " + ", ".join(f"{c['images']} × {c['epochs']}" for c in failed) + " failed the rule"
                    if failed
                    else ""
                )
                + f"; the adversarial study's policy arms run at magnitude scale {regime['magnitude_scale']:g} "
                "(the better TrivialAugmentWide arm's)."
            )
    adversarial = _load(results, "adversarial.json")
    if adversarial is not None:
        gate = adversarial["gate"]
        kls = [p["kl_nats"] for p in gate["per_seed"]]
        nulls = [p["null_p95"] for p in gate["per_seed"]]
        words = "; ".join(f"{name}: {text}" for name, text in adversarial["verdicts"].items())
        lines.append(
            f"- **Adversarial AutoAugment** ({adversarial['date'][:10]}, {len(gate['per_seed'])} paired seeds, "
            f"M = {adversarial['settings']['M']}): gate **{'passed' if gate['passed'] else 'failed'}** — the "
            f"controller moved {min(kls):.1f}–{max(kls):.1f} nats from its start (its shuffled-reward null's "
            f"95th percentile: {min(nulls):.2f}–{max(nulls):.2f}). {words}."
        )
    aws = _load(results, "aws.json")
    if aws is not None:
        g, search = aws["gate"], aws["search"]
        every = aws["proxy"]["correlations"]["uniform"]["all"]["spearman"]
        versus = [d for name, d in search["differences"].items() if name.endswith("-trivialaugment_wide")]
        lines.append(
            f"- **AWS** ({aws['date'][:10]}, {len(aws['policies'])} policies × "
            f"{len(aws['policies'][0]['full_by_seed'])} paired seeds): gate "
            f"**{'passed' if g['passed'] else 'failed'}** (best {g['best_policy']} "
            f"{g['best_accuracy']:.4f} against identity's {g['identity_accuracy']:.4f}); the proxy's Spearman over "
            f"all policies {every['r']:.2f} [{every['ci95'][0]:.2f}, {every['ci95'][1]:.2f}]; proxy verdict: "
            f"{aws['verdicts']['proxy']}. Search gate **{'passed' if search['gate']['passed'] else 'failed'}** "
            f"({aws['verdicts']['search']}); its found policies − TrivialAugmentWide: "
            + ", ".join(f"{d['mean']:+.2f} [{d['t_ci95'][0]:+.2f}, {d['t_ci95'][1]:+.2f}]" for d in versus)
            + " points of test accuracy."
        )
    return "\n".join(lines)


def render(page: str, results: str = RESULTS) -> str:
    """``page`` with every record block refilled from ``results`` and, where it has the markers, the
    studies' headline (:func:`headline`). ValueError names a block whose record is missing."""

    def block(match: re.Match) -> str:
        path = os.path.join(results, match["name"])
        if not os.path.exists(path):
            raise ValueError(f"the block <!-- record: {match['name']} --> names no file {path}")
        with open(path, encoding="utf-8") as handle:
            body = handle.read()
        return f"{match[1]}{body}{match[4]}"

    page = _BLOCK.sub(block, page)
    if START in page and END in page:
        head, rest = page.split(START, 1)
        _, tail = rest.split(END, 1)
        page = f"{head}{START}\n{headline(results)}\n{END}{tail}"
    return page


def main(argv=None) -> int:
    """Rewrite :data:`PAGES` (or the pages given) from the committed records."""
    for path in argv or PAGES:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(render(text))
        print(f"wrote the studies' figures into {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))


__all__ = ["PAGES", "RESULTS", "headline", "main", "render"]
