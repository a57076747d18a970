"""The studies' figures in the README and the docs are the committed records' (reproduce/figures.py):
a page that differs from what the records make of it fails here, as does a committed table that
differs from what its study's code makes of its JSON."""

from __future__ import annotations

import json
import os

import pytest

from fastpolicy.reproduce import figures, regime


@pytest.mark.parametrize("page", figures.PAGES, ids=os.path.basename)
def test_every_page_quotes_the_committed_records(page):
    with open(page, encoding="utf-8") as handle:
        text = handle.read()
    assert "<!-- record:" in text or figures.START in text
    assert figures.render(text) == text, f"{page} differs from its records: run python -m fastpolicy.reproduce.figures"


def test_the_regime_table_is_its_json():
    with open(os.path.join(figures.RESULTS, "regime.json"), encoding="utf-8") as handle:
        record = json.load(handle)
    with open(os.path.join(figures.RESULTS, "regime.md"), encoding="utf-8") as handle:
        assert handle.read() == regime.table(record)
    assert record["git"]["commit"] and record["commits"]  # traceable to a commit
    chosen = {c["cell"]: c for c in record["cells"]}[record["chosen"]]
    rule = regime.qualifies(
        chosen["arms"]["baseline"]["test"],
        chosen["arms"]["baseline"]["train"],
        chosen["arms"]["trivialaugment"]["test"],
    )
    assert rule["passed"] and rule == chosen["rule"]  # the choice follows from the rule


def test_a_changed_figure_is_caught(tmp_path):
    with open(figures.PAGES[0], encoding="utf-8") as handle:
        text = handle.read()
    line = figures.headline().splitlines()[0]
    assert line in text and "20.7" in line  # the regime's gap, as its record holds it
    assert figures.render(text.replace(line, line.replace("20.7", "21.7"))) == text
    with pytest.raises(ValueError, match="names no file"):
        figures.render("<!-- record: missing.md -->\nx\n<!-- /record -->\n", str(tmp_path))
