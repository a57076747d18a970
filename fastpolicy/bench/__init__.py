"""``fastpolicy bench``: fastpolicy beside its peers on the same images, as ratios.

* :mod:`.record` — what every result JSON holds beside its numbers (machine, versions, command, date);
* :mod:`.timing` — warm-up, repeated runs, medians;
* :mod:`.peers` — the contenders: fastpolicy's loader, DALI's plain and ``auto_aug`` pipelines,
  torchvision ``ImageFolder`` + ``DataLoader`` (v2 transforms), Kornia's ``AutoAugment``;
* :mod:`.stage` — the policy stage alone on pre-decoded batches, per op family;
* :mod:`.training` — a ResNet-50 step fed by the loader vs pre-staged tensors (GPU);
* :mod:`.report` — the table, the bar chart and the section of `docs/benchmarks.md`;
* :mod:`.run` — the command (``fastpolicy bench``).
"""
