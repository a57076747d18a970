"""The papers' claims at small scale on real data, and ImageNet recipes checked before a cluster is spent.

* :mod:`.table4` — Adversarial AutoAugment's Table 4 arms on Fashion-MNIST where the baseline
  overfits, paired seeds, the adversary's mechanism;
* :mod:`.aws` — AWS's proxy check (Table 5) where augmentation helps, and its PPO search end to
  end against TrivialAugment, uniform and identity;
* :mod:`.dry_run` — a preset's whole pipeline on a generated ImageNet-layout tree, a few steps.
"""
