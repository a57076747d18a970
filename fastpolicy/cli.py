"""``fastpolicy`` command line: ``fastpolicy search adversarial …`` (also ``python -m fastpolicy.cli``)."""

from __future__ import annotations

import argparse
import datetime
import os
import sys


def _search_adversarial(args) -> int:
    from .train.adversarial import AdversarialConfig, AdversarialSearch

    out = args.out or os.path.join("runs", f"adversarial-{args.mode}-{datetime.datetime.now():%Y%m%d-%H%M%S}")
    if args.resume and args.out is None:
        raise SystemExit("fastpolicy: --resume needs --out, the folder of the run to continue")
    preset = args.preset or ("fashion_mnist" if args.data is None else "imagenet_resnet50")
    config = AdversarialConfig(out=out, preset=preset, mode=args.mode, data=args.data, model=args.model,
                               epochs=args.epochs, M=args.M, batch=args.batch, train_subset=args.subset,
                               device=args.device, seed=args.seed, num_threads=args.threads,
                               progress=not args.no_progress)
    AdversarialSearch(config, resume=args.resume).run()
    print(f"fastpolicy: results in {os.path.abspath(out)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .train.adversarial import MODES
    from .train.models import MODELS
    from .train.presets import PRESETS

    parser = argparse.ArgumentParser(prog="fastpolicy", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    search = commands.add_parser("search", help="run a policy search").add_subparsers(dest="algorithm", required=True)
    adv = search.add_parser("adversarial", help="Adversarial AutoAugment (default: a short search on Fashion-MNIST)")
    adv.add_argument("--data", default=None,
                     help="folder with ImageNet-layout train/ and val/ (default: Fashion-MNIST from "
                          "/usr/share/datasets/fashion-mnist)")
    adv.add_argument("--preset", choices=sorted(PRESETS), default=None,
                     help="training recipe (default fashion_mnist, or imagenet_resnet50 with --data)")
    adv.add_argument("--model", choices=sorted(MODELS), default=None, help="override the preset's model")
    adv.add_argument("--epochs", type=int, default=None)
    adv.add_argument("--M", type=int, default=None, help="copies (policies) per image")
    adv.add_argument("--batch", type=int, default=None, help="N, distinct images per step")
    adv.add_argument("--subset", type=int, default=None, help="train on the first SUBSET images (Fashion-MNIST)")
    adv.add_argument("--mode", choices=MODES, default="adversarial", help="the paper's Table 4 arms")
    adv.add_argument("--out", default=None, help="output folder (default runs/adversarial-<mode>-<time>)")
    adv.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    adv.add_argument("--device", choices=["cpu", "gpu"], default=None, help="default: the GPU if there is one")
    adv.add_argument("--seed", type=int, default=0)
    adv.add_argument("--threads", type=int, default=2, help="DALI CPU threads")
    adv.add_argument("--no-progress", action="store_true", help="no tqdm bars")
    adv.set_defaults(run=_search_adversarial)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
