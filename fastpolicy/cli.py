"""``fastpolicy`` command line (also ``python -m fastpolicy``).

* ``fastpolicy search adversarial`` — Adversarial AutoAugment (default: a short search on Fashion-MNIST);
* ``fastpolicy search aws`` — AWS, both stages (default: a short search on Fashion-MNIST);
* ``fastpolicy train --policy FILE`` — train from scratch with a found policy;
* ``fastpolicy reproduce table4|proxy|dry-run`` — small-scale reproductions, ImageNet dry runs;
* ``fastpolicy bench`` — throughput beside DALI, torchvision and Kornia (:mod:`fastpolicy.bench.run`);
* ``fastpolicy show RUN_DIR`` — a run's kind, settings, progress, findings and files (:mod:`fastpolicy.show`).

Each runs unchanged under ``torchrun --nproc_per_node=K -m fastpolicy.cli ...`` (DDP; see
:mod:`fastpolicy.train.distributed`). Every setting of a run's config dataclass is a flag;
``--config run.yaml`` sets any of them (flags override it) and every run writes its
resolved ``config.yaml`` (:mod:`fastpolicy.config`). ``-v``/``-q`` set how much it logs
(:mod:`fastpolicy.log`; rank 0 only under ``torchrun``).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import traceback

from .errors import UserError
from .log import get as get_logger

log = get_logger(__name__)

USER_ERRORS = (UserError, ValueError, FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError)
"""Exceptions the command line reports as one line naming the input (exit status 2); others
are bugs and keep their traceback. ``--debug`` shows the traceback of both."""


def _number(kind, minimum, text: str):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
    if not value >= minimum or value != value:
        raise argparse.ArgumentTypeError(f"{text} is not {'positive' if minimum > 0 else f'≥ {minimum}'}")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer ≥ 1."""
    return _number(int, 1, text)


def nonnegative_int(text: str) -> int:
    """argparse type: an integer ≥ 0."""
    return _number(int, 0, text)


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    value = _number(float, 0, text)
    if value == 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text} is not a positive finite number")
    return value


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad flag in one line (``prog: error: … (see --help)``), exit 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _level(text: str) -> int:
    """argparse type: an integer level in 0..255."""
    value = _number(int, 0, text)
    if value > 255:
        raise argparse.ArgumentTypeError(f"{text} is not a level in 0..255")
    return value


def _scale(text: str) -> float:
    """argparse type: a number in (0, 1]."""
    value = positive_float(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"{text} is not in (0, 1]")
    return value


def _out(args, name: str) -> str:
    from .train import distributed, rundir

    if args.resume and args.out is None:
        raise UserError("--resume needs --out, the folder of the run to continue")  # every rank
    if args.out is not None:
        return args.out
    # a new folder, unique even for runs started in the same second; under torchrun every rank
    # writes into rank 0's
    return distributed.broadcast_object(rundir.new_run_folder(name) if distributed.is_main() else None)


def _preset(args) -> str:
    return args.preset or ("fashion_mnist" if args.data is None else "imagenet_resnet50")


def _config(args, config_class, out: str):
    """``config_class`` from the parsed flags (their ``dest`` is the field name)."""
    if args.data is not None and not os.path.isdir(args.data):
        raise UserError(f"--data {args.data}: no such folder")
    values = {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(config_class)
        if f.name != "out" and hasattr(args, f.name)
    }
    values["preset"] = _preset(args)
    if "agent_betas" in values:
        values["agent_betas"] = tuple(values["agent_betas"])
    return config_class(out=out, **values)


def _record(config, command: str) -> None:
    """The run's resolved settings in its folder (rank 0)."""
    from .config import write_config
    from .train import distributed

    if distributed.is_main():
        write_config(config.out, config, command)


def _search_adversarial(args) -> int:
    from .train.adversarial import AdversarialConfig, AdversarialSearch

    config = _config(args, AdversarialConfig, _out(args, f"adversarial-{args.mode}"))
    search = AdversarialSearch(config, resume=args.resume, overwrite=args.overwrite)
    _record(config, "fastpolicy search adversarial")
    search.run()
    log.info(f"fastpolicy: results in {os.path.abspath(config.out)}")
    return 0


def _search_aws(args) -> int:
    from .train.aws import AWSConfig, AWSSearch

    config = _config(args, AWSConfig, _out(args, "aws"))
    search = AWSSearch(config, resume=args.resume, overwrite=args.overwrite)
    _record(config, "fastpolicy search aws")
    search.run()
    log.info(
        f"fastpolicy: results in {os.path.abspath(config.out)}; train with it: "
        f"fastpolicy train --policy {os.path.join(config.out, 'policy.json')}"
    )
    return 0


def _train(args) -> int:
    from .train.final import FinalTraining, TrainConfig

    config = _config(args, TrainConfig, _out(args, "train"))
    training = FinalTraining(config, resume=args.resume, overwrite=args.overwrite)
    _record(config, "fastpolicy train")
    training.run()
    log.info(f"fastpolicy: results in {os.path.abspath(config.out)}")
    return 0


def _reproduce(args) -> int:
    if args.study == "table4":
        from .reproduce.table4 import run_table4

        run_table4(
            args.out or os.path.join("runs", "reproduce", "table4"),
            args.budget,
            args.results,
            seeds=args.seeds,
            progress=not args.no_progress,
            threads=args.threads,
        )
    elif args.study == "proxy":
        from .reproduce.proxy import run_proxy

        run_proxy(
            args.out or os.path.join("runs", "reproduce", "proxy"),
            args.budget,
            args.results,
            progress=not args.no_progress,
            threads=args.threads,
        )
    else:
        from .reproduce.dry_run import dry_run

        dry_run(
            args.preset,
            args.search,
            args.out or os.path.join("runs", "reproduce", f"dry-run-{args.preset}"),
            batch=args.batch,
            M=args.M,
            device=args.device,
            progress=not args.no_progress,
        )
    return 0


def _show(args) -> int:
    from .show import describe

    print("\n".join(describe(args.folder)))  # the command's output, not a log
    return 0


def _bench(options: list[str]) -> int:
    from .bench.run import main as bench

    bench(options)
    return 0


def _add_common(parser: argparse.ArgumentParser, out_default: str) -> None:
    """The flags every run shares; each ``dest`` is the config field it sets."""
    from .data.files import DEFAULT_MAX_PIXELS
    from .train.models import MODELS
    from .train.presets import PRESETS

    parser.add_argument(
        "--config",
        default=None,
        metavar="YAML",
        help="settings from a YAML file (field: value; a run's config.yaml repeats it); flags "
        "given beside it override it",
    )
    parser.add_argument(
        "--data",
        default=None,
        help="folder with ImageNet-layout train/ and val/, or CIFAR-10/100 in its Python "
        "format (cifar-10-batches-py/, cifar-100-python/); default: Fashion-MNIST from "
        "/usr/share/datasets/fashion-mnist",
    )
    parser.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default=None,
        help="training recipe (default fashion_mnist, or imagenet_resnet50 with --data)",
    )
    parser.add_argument("--model", choices=sorted(MODELS), default=None, help="override the preset's model")
    parser.add_argument("--batch", type=positive_int, default=None, help="N, distinct images per step")
    parser.add_argument(
        "--subset",
        dest="train_subset",
        type=positive_int,
        default=None,
        help="train on at most SUBSET images (Fashion-MNIST)",
    )
    parser.add_argument(
        "--out",
        default=None,
        help=f"output folder (default {out_default}); a folder that "
        "holds a run is refused without --resume or --overwrite",
    )
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the run in --out (deletes its files; only folders marked as fastpolicy runs)",
    )
    parser.add_argument("--device", choices=["cpu", "gpu"], default=None, help="default: the GPU if there is one")
    parser.add_argument("--seed", type=nonnegative_int, default=0)
    parser.add_argument("--threads", dest="num_threads", type=positive_int, default=2, help="DALI CPU threads")
    parser.add_argument(
        "--verify",
        choices=["header", "decode", "none"],
        default="header",
        help="image checks before training (--data folders): header (signature, truncation, "
        "dimensions; default), decode (full decode), none",
    )
    parser.add_argument(
        "--on-bad",
        choices=["raise", "skip"],
        default="raise",
        help="a bad image file stops the run naming it (raise, default) or is dropped and counted",
    )
    parser.add_argument(
        "--max-pixels",
        type=positive_int,
        default=DEFAULT_MAX_PIXELS,
        help="refuse images with more pixels (default PIL's MAX_IMAGE_PIXELS, %(default)s)",
    )
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no tqdm bars")


def build_parser() -> argparse.ArgumentParser:
    from .config import add_field_flags
    from .train.adversarial import MODES, AdversarialConfig
    from .train.aws import REWARDS, AWSConfig
    from .train.final import TrainConfig

    parser = _Parser(prog="fastpolicy", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--debug", action="store_true", help="show the traceback of an error (a user error prints one line without it)"
    )
    verbosity = parser.add_mutually_exclusive_group()
    verbosity.add_argument(
        "-v", "--verbose", dest="verbosity", action="store_const", const=1, default=0, help="log more (debug messages)"
    )
    verbosity.add_argument(
        "-q", "--quiet", dest="verbosity", action="store_const", const=-1, help="log warnings and errors only"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    search = commands.add_parser("search", help="run a policy search").add_subparsers(dest="algorithm", required=True)

    adv = search.add_parser("adversarial", help="Adversarial AutoAugment (default: a short search on Fashion-MNIST)")
    _add_common(adv, "runs/adversarial-<mode>-<time>")
    adv.add_argument("--epochs", type=positive_int, default=None)
    adv.add_argument("--M", type=positive_int, default=None, help="copies (policies) per image")
    adv.add_argument("--mode", choices=MODES, default="adversarial", help="the paper's Table 4 arms")
    adv.add_argument(
        "--controller-window",
        type=positive_int,
        default=None,
        help="batches per controller update (default: one epoch, the paper's)",
    )
    adv.add_argument(
        "--fill",
        type=_level,
        default=128,
        help="0..255 level geometric ops fill with (default AutoAugment's grey 128; 0 for dark "
        "backgrounds such as Fashion-MNIST's)",
    )
    adv.add_argument(
        "--magnitude-scale",
        type=_scale,
        default=1.0,
        help="narrow every op's magnitude range towards its identity by this factor in (0, 1] "
        "(default 1: the full AutoAugment range)",
    )
    add_field_flags(adv, AdversarialConfig)
    adv.set_defaults(run=_search_adversarial, settings=adv)

    aws = search.add_parser(
        "aws", help="AWS: shared weights, then PPO over op pairs (default: a short search on Fashion-MNIST)"
    )
    _add_common(aws, "runs/aws-<time>")
    aws.add_argument(
        "--val", dest="val_count", type=positive_int, default=None, help="training images held out for the reward"
    )
    aws.add_argument("--stage1-epochs", type=positive_int, default=None, help="shared-weight epochs (uniform policy)")
    aws.add_argument("--loops", type=positive_int, default=None, help="stage-2 loops T_max")
    aws.add_argument("--finetune-epochs", type=positive_int, default=None, help="fine-tuning epochs per loop")
    aws.add_argument("--finetune-lr", type=positive_float, default=None, help="stage 2's constant learning rate")
    aws.add_argument(
        "--aws-parameterization",
        dest="parameterization",
        choices=["factorized", "joint"],
        default="factorized",
        help="p(e1)·p(e2|e1), the official code's (default), or one normalized "
        "sigmoid over all 36² pairs, the paper's text",
    )
    aws.add_argument(
        "--agent-lr",
        type=positive_float,
        default=None,
        help="the policy's Adam learning rate (default the preset's: 0.1, or 0.2 on ImageNet)",
    )
    aws.add_argument(
        "--reward",
        choices=REWARDS,
        default="last",
        help="last evaluation, or the mean of the best two (the reference code's)",
    )
    add_field_flags(aws, AWSConfig)
    aws.set_defaults(run=_search_aws, settings=aws)

    train = commands.add_parser(
        "train",
        help="train from scratch with a policy file (AWS policy.json, a Policy, or an adversarial schedule.json)",
    )
    _add_common(train, "runs/train-<time>")
    train.add_argument("--policy", default=None, help="policy file (default: standard augmentation only)")
    train.add_argument("--epochs", type=positive_int, default=None)
    train.add_argument(
        "--M",
        type=positive_int,
        default=None,
        help="enlarged batch: copies per image (default 1, or the schedule's policies per epoch)",
    )
    add_field_flags(train, TrainConfig)
    train.set_defaults(run=_train, settings=train)

    reproduce = commands.add_parser("reproduce", help="the papers' claims at small scale; ImageNet dry runs")
    studies = reproduce.add_subparsers(dest="study", required=True)
    for name, text in (
        ("table4", "Adversarial AutoAugment's Table 4 arms on Fashion-MNIST where the baseline overfits, paired seeds"),
        ("proxy", "AWS's proxy check: fine-tuned shared weights vs full training"),
    ):
        study = studies.add_parser(name, help=text)
        study.add_argument(
            "--budget",
            choices=["full", "smoke"],
            default="full",
            help="full: the committed study (tens of minutes on a 2-core CPU); smoke: seconds",
        )
        study.add_argument("--out", default=None, help=f"run folders (default runs/reproduce/{name})")
        study.add_argument("--results", default=None, help="where the JSON, table and plot go (default --out)")
        study.add_argument("--threads", type=positive_int, default=2, help="DALI CPU threads")
        if name == "table4":
            study.add_argument("--seeds", type=positive_int, default=None, help="seeds (default the budget's)")
        study.add_argument("--no-progress", action="store_true")
        study.set_defaults(run=_reproduce, device="cpu")
    from .train.presets import PRESETS

    dry = studies.add_parser(
        "dry-run",
        help="a preset's whole pipeline on a generated ImageNet-layout tree, "
        "a few steps (check a recipe before spending a cluster)",
    )
    dry.add_argument("--preset", choices=sorted(PRESETS), default="imagenet_resnet50")
    dry.add_argument("--search", choices=["adversarial", "aws", "train"], default="adversarial")
    dry.add_argument("--out", default=None)
    dry.add_argument("--batch", type=positive_int, default=4, help="global N for the tiny tree")
    dry.add_argument("--M", type=positive_int, default=None, help="override the preset's M")
    dry.add_argument("--device", choices=["cpu", "gpu"], default=None)
    dry.add_argument("--no-progress", action="store_true")
    dry.set_defaults(run=_reproduce, study="dry-run")

    show = commands.add_parser("show", help="what a run is, how far it got, what it found, where its files are")
    show.add_argument("folder", help="the run's folder (its --out)")
    show.set_defaults(run=_show)

    bench = commands.add_parser(
        "bench", add_help=False, help="throughput beside its peers (fastpolicy bench --help for its options)"
    )
    bench.add_argument("options", nargs=argparse.REMAINDER)  # parsed by fastpolicy.bench.run
    return parser


def main(argv=None) -> int:
    """Run a command; under ``torchrun`` (``WORLD_SIZE`` > 1) each process joins the group first.

    A user error (:data:`USER_ERRORS`: a bad value, path, policy file, image or checkpoint, a
    refused run folder) prints ``fastpolicy: error: …`` naming the input and returns 2 (with
    ``--debug`` the traceback too); argparse reports bad flags the same way.
    """
    from .train import distributed

    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["bench"]:
        return _bench(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    joined = False
    try:
        if getattr(args, "config", None):
            from .config import apply_config_file

            apply_config_file(args.settings, args.config)
            args = parser.parse_args(argv)  # the file's settings as defaults, the flags over them
        joined = distributed.init_from_env(getattr(args, "device", None))
        from .log import setup

        setup(args.verbosity, distributed.rank())
        return args.run(args)
    except USER_ERRORS as error:
        if args.debug:
            traceback.print_exc()
        message = str(error) or type(error).__name__
        if isinstance(error, OSError) and error.filename is not None and str(error.filename) not in message:
            message = f"{error.filename}: {message}"
        print(f"fastpolicy: error: {message}", file=sys.stderr)
        return 2
    finally:
        if joined:
            distributed.shutdown()


if __name__ == "__main__":
    sys.exit(main())
