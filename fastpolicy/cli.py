"""``fastpolicy`` command line (also ``python -m fastpolicy.cli``).

* ``fastpolicy search adversarial`` — Adversarial AutoAugment (default: a short search on Fashion-MNIST);
* ``fastpolicy search aws`` — AWS, both stages (default: a short search on Fashion-MNIST);
* ``fastpolicy train --policy FILE`` — train from scratch with a found policy;
* ``fastpolicy reproduce table4|proxy|dry-run`` — small-scale reproductions, ImageNet dry runs;
* ``fastpolicy bench`` — throughput beside DALI, torchvision and Kornia (:mod:`fastpolicy.bench.run`).

Each runs unchanged under ``torchrun --nproc_per_node=K -m fastpolicy.cli ...`` (DDP; see
:mod:`fastpolicy.train.distributed`).
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys


def _out(args, name: str) -> str:
    from .train import distributed

    if args.resume and args.out is None:
        raise SystemExit("fastpolicy: --resume needs --out, the folder of the run to continue")  # every rank
    # under torchrun every rank writes into rank 0's folder
    return args.out or distributed.broadcast_object(
        os.path.join("runs", f"{name}-{datetime.datetime.now():%Y%m%d-%H%M%S}"))


def _preset(args) -> str:
    return args.preset or ("fashion_mnist" if args.data is None else "imagenet_resnet50")


def _common(args) -> dict:
    """Config fields every command shares."""
    return dict(preset=_preset(args), data=args.data, model=args.model, batch=args.batch, train_subset=args.subset,
                device=args.device, seed=args.seed, num_threads=args.threads, progress=not args.no_progress)


def _search_adversarial(args) -> int:
    from .train.adversarial import AdversarialConfig, AdversarialSearch

    out = _out(args, f"adversarial-{args.mode}")
    config = AdversarialConfig(out=out, mode=args.mode, epochs=args.epochs, M=args.M, **_common(args))
    AdversarialSearch(config, resume=args.resume).run()
    print(f"fastpolicy: results in {os.path.abspath(out)}")
    return 0


def _search_aws(args) -> int:
    from .train.aws import AWSConfig, AWSSearch

    out = _out(args, "aws")
    config = AWSConfig(out=out, val_count=args.val, stage1_epochs=args.stage1_epochs, loops=args.loops,
                       finetune_epochs=args.finetune_epochs, finetune_lr=args.finetune_lr, reward=args.reward,
                       **_common(args))
    AWSSearch(config, resume=args.resume).run()
    print(f"fastpolicy: results in {os.path.abspath(out)}; train with it: "
          f"fastpolicy train --policy {os.path.join(out, 'policy.json')}")
    return 0


def _train(args) -> int:
    from .train.final import FinalTraining, TrainConfig

    out = _out(args, "train")
    config = TrainConfig(out=out, policy=args.policy, epochs=args.epochs, M=args.M, **_common(args))
    FinalTraining(config, resume=args.resume).run()
    print(f"fastpolicy: results in {os.path.abspath(out)}")
    return 0


def _reproduce(args) -> int:
    if args.study == "table4":
        from .reproduce.ablation import run_ablation

        run_ablation(args.out or os.path.join("runs", "reproduce", "table4"), args.budget, args.results,
                     progress=not args.no_progress, threads=args.threads)
    elif args.study == "proxy":
        from .reproduce.proxy import run_proxy

        run_proxy(args.out or os.path.join("runs", "reproduce", "proxy"), args.budget, args.results,
                  progress=not args.no_progress, threads=args.threads)
    else:
        from .reproduce.dry_run import dry_run

        dry_run(args.preset, args.search, args.out or os.path.join("runs", "reproduce", f"dry-run-{args.preset}"),
                batch=args.batch, M=args.M, device=args.device, progress=not args.no_progress)
    return 0


def _bench(options: list[str]) -> int:
    from .bench.run import main as bench

    bench(options)
    return 0


def _add_common(parser: argparse.ArgumentParser, out_default: str) -> None:
    from .train.models import MODELS
    from .train.presets import PRESETS

    parser.add_argument("--data", default=None,
                        help="folder with ImageNet-layout train/ and val/ (default: Fashion-MNIST from "
                             "/usr/share/datasets/fashion-mnist)")
    parser.add_argument("--preset", choices=sorted(PRESETS), default=None,
                        help="training recipe (default fashion_mnist, or imagenet_resnet50 with --data)")
    parser.add_argument("--model", choices=sorted(MODELS), default=None, help="override the preset's model")
    parser.add_argument("--batch", type=int, default=None, help="N, distinct images per step")
    parser.add_argument("--subset", type=int, default=None, help="train on at most SUBSET images (Fashion-MNIST)")
    parser.add_argument("--out", default=None, help=f"output folder (default {out_default})")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    parser.add_argument("--device", choices=["cpu", "gpu"], default=None, help="default: the GPU if there is one")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2, help="DALI CPU threads")
    parser.add_argument("--no-progress", action="store_true", help="no tqdm bars")


def build_parser() -> argparse.ArgumentParser:
    from .train.adversarial import MODES
    from .train.aws import REWARDS

    parser = argparse.ArgumentParser(prog="fastpolicy", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    search = commands.add_parser("search", help="run a policy search").add_subparsers(dest="algorithm", required=True)

    adv = search.add_parser("adversarial", help="Adversarial AutoAugment (default: a short search on Fashion-MNIST)")
    _add_common(adv, "runs/adversarial-<mode>-<time>")
    adv.add_argument("--epochs", type=int, default=None)
    adv.add_argument("--M", type=int, default=None, help="copies (policies) per image")
    adv.add_argument("--mode", choices=MODES, default="adversarial", help="the paper's Table 4 arms")
    adv.set_defaults(run=_search_adversarial)

    aws = search.add_parser("aws", help="AWS: shared weights, then PPO over op pairs (default: a short search "
                                        "on Fashion-MNIST)")
    _add_common(aws, "runs/aws-<time>")
    aws.add_argument("--val", type=int, default=None, help="training images held out for the reward")
    aws.add_argument("--stage1-epochs", type=int, default=None, help="shared-weight epochs (uniform policy)")
    aws.add_argument("--loops", type=int, default=None, help="stage-2 loops T_max")
    aws.add_argument("--finetune-epochs", type=int, default=None, help="fine-tuning epochs per loop")
    aws.add_argument("--finetune-lr", type=float, default=None, help="stage 2's constant learning rate")
    aws.add_argument("--reward", choices=REWARDS, default="last",
                     help="last evaluation, or the mean of the best two (the reference code's)")
    aws.set_defaults(run=_search_aws)

    train = commands.add_parser("train", help="train from scratch with a policy file (AWS policy.json, a "
                                              "Policy, or an adversarial schedule.json)")
    _add_common(train, "runs/train-<time>")
    train.add_argument("--policy", default=None, help="policy file (default: standard augmentation only)")
    train.add_argument("--epochs", type=int, default=None)
    train.add_argument("--M", type=int, default=None, help="enlarged batch: copies per image (default 1, or the "
                                                           "schedule's policies per epoch)")
    train.set_defaults(run=_train)

    reproduce = commands.add_parser("reproduce", help="the papers' claims at small scale; ImageNet dry runs")
    studies = reproduce.add_subparsers(dest="study", required=True)
    for name, text in (("table4", "Adversarial AutoAugment's Table 4 arms on Fashion-MNIST, 3 seeds"),
                       ("proxy", "AWS's proxy check: fine-tuned shared weights vs full training")):
        study = studies.add_parser(name, help=text)
        study.add_argument("--budget", choices=["full", "smoke"], default="full",
                           help="full: the committed study (tens of minutes on a 2-core CPU); smoke: seconds")
        study.add_argument("--out", default=None, help=f"run folders (default runs/reproduce/{name})")
        study.add_argument("--results", default=None, help="where the JSON, table and plot go (default --out)")
        study.add_argument("--threads", type=int, default=2, help="DALI CPU threads")
        study.add_argument("--no-progress", action="store_true")
        study.set_defaults(run=_reproduce, device="cpu")
    from .train.presets import PRESETS

    dry = studies.add_parser("dry-run", help="a preset's whole pipeline on a generated ImageNet-layout tree, "
                                             "a few steps (check a recipe before spending a cluster)")
    dry.add_argument("--preset", choices=sorted(PRESETS), default="imagenet_resnet50")
    dry.add_argument("--search", choices=["adversarial", "aws", "train"], default="adversarial")
    dry.add_argument("--out", default=None)
    dry.add_argument("--batch", type=int, default=4, help="global N for the tiny tree")
    dry.add_argument("--M", type=int, default=None, help="override the preset's M")
    dry.add_argument("--device", choices=["cpu", "gpu"], default=None)
    dry.add_argument("--no-progress", action="store_true")
    dry.set_defaults(run=_reproduce, study="dry-run")

    bench = commands.add_parser("bench", add_help=False,
                                help="throughput beside its peers (fastpolicy bench --help for its options)")
    bench.add_argument("options", nargs=argparse.REMAINDER)  # parsed by fastpolicy.bench.run
    return parser


def main(argv=None) -> int:
    """Run a command; under ``torchrun`` (``WORLD_SIZE`` > 1) each process joins the group first."""
    from .train import distributed

    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["bench"]:
        return _bench(argv[1:])
    args = build_parser().parse_args(argv)
    joined = distributed.init_from_env(getattr(args, "device", None))
    try:
        return args.run(args)
    finally:
        if joined:
            distributed.shutdown()


if __name__ == "__main__":
    sys.exit(main())
