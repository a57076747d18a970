"""The papers' claims at small scale on real data, and ImageNet recipes checked before a cluster is spent.

* :mod:`.adversarial` — does the Adversarial AutoAugment controller learn (a pre-registered gate),
  and is it worth more than TrivialAugment/RandAugment at the same compute (paired seeds);
* :mod:`.aws` — AWS's proxy check (Table 5) where augmentation helps, and its PPO search end to
  end against TrivialAugment, uniform and identity;
* :mod:`.stats` — the studies' statistics: paired t intervals, exact sign-flip p-values, bootstrap;
* :mod:`.dry_run` — a preset's whole pipeline on a generated ImageNet-layout tree, a few steps.
"""
