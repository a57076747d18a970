"""The papers' claims at small scale on real data, and ImageNet recipes checked before a cluster is spent.

* :mod:`.table4` — Adversarial AutoAugment's Table 4 arms on Fashion-MNIST where the baseline
  overfits, paired seeds, the adversary's mechanism;
* :mod:`.proxy` — AWS's Table 5 proxy check: fine-tuned shared weights vs training from scratch;
* :mod:`.dry_run` — a preset's whole pipeline on a generated ImageNet-layout tree, a few steps.
"""
