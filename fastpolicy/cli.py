"""fastpolicy command line (also python -m fastpolicy).

  fastpolicy search adversarial   Adversarial AutoAugment (default: a short search on Fashion-MNIST)
  fastpolicy search aws           AWS, both stages (default: a short search on Fashion-MNIST)
  fastpolicy train --policy P     train from scratch with a found or a standard policy
  fastpolicy reproduce regime|adversarial|aws|dry-run   (table4, proxy: their old names)
                                  small-scale reproductions, ImageNet dry runs
  fastpolicy bench                throughput beside DALI, torchvision and Kornia
  fastpolicy show RUN_DIR         a run's kind, settings, progress, findings and files

Each runs unchanged under torchrun --nproc_per_node=K -m fastpolicy.cli ... (DDP). Every
setting of a run is a flag, generated from its config dataclass; --config run.yaml sets any
of them (flags override it) and every run writes its resolved config.yaml. -v/-q (before or
after the command) set how much it logs; rank 0 only under torchrun.
"""

from __future__ import annotations

import argparse
import dataclasses
import errno
import importlib
import logging
import os
import sys
import traceback

from . import native_log
from .errors import UserError
from .log import get as get_logger

log = get_logger(__name__)

USER_ERRORS = (UserError, ValueError, FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError)
"""Exceptions the command line reports as one line naming the input (exit status 2); others
are bugs and keep their traceback. ``--debug`` shows the traceback of both."""


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad flag in one line (``prog: error: … (see --help)``), exit 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


# -- running a command ----------------------------------------------------------------------


def _out(args, kind: str) -> str:
    from .train import distributed, rundir

    if args.resume and args.out is None:
        raise UserError("--resume needs --out, the folder of the run to continue")  # every rank
    if args.out is not None:
        return args.out
    # a new folder, unique even for runs started in the same second; under torchrun every rank
    # writes into rank 0's
    return distributed.broadcast_object(rundir.new_run_folder(kind) if distributed.is_main() else None)


def _options(args, options_class, **values):
    """``options_class`` from the parsed flags (each flag's ``dest`` is its field's name)."""
    fields = {f.name: getattr(args, f.name) for f in dataclasses.fields(options_class) if hasattr(args, f.name)}
    fields = {k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()}
    return options_class(**(fields | values))


def _run(args) -> int:
    """A search or a training: its config from the flags, then ``Run(config).run()``; DALI's native
    log lines become the project's messages meanwhile (:mod:`.native_log`)."""
    with native_log.captured():
        return _run_captured(args)


def _run_captured(args) -> int:
    from .config import write_config
    from .train import distributed
    from .train.data import is_shards

    if args.data is not None and not os.path.isdir(args.data) and not is_shards(args.data):
        raise UserError(f"--data {args.data}: no such folder, and no .tar or .tfrecord shards")
    preset = args.preset or ("fashion_mnist" if args.data is None else _fit_to_data(args))
    args.out = _out(args, args.kind_class.KIND)  # named by the interruption hint (main)
    config = _options(args, args.config_class, out=args.out, preset=preset)
    run = args.kind_class(config, resume=args.resume, overwrite=args.overwrite)
    if distributed.is_main():
        write_config(config.out, config.resolved_config(), args.command_line)
    _started()
    try:
        run.run()
    except BaseException:
        # stopped (an error, Ctrl-C) before its first checkpoint: nothing to resume, so nothing is
        # left behind and the same command runs again; after one, the folder stays for --resume
        if not _has_checkpoint(config.out):
            run.runner.discard()
        raise
    if log.isEnabledFor(logging.INFO):
        log.info(f"fastpolicy: results in {os.path.abspath(config.out)}")
    elif distributed.is_main():
        print(os.path.abspath(config.out))  # -q: the run folder, the one line a script needs
    if args.kind_class.KIND == "aws":
        log.info(f"fastpolicy: train with it: fastpolicy train --policy {os.path.join(config.out, 'policy.json')}")
    return 0


def _has_checkpoint(out: str) -> bool:
    """Whether the run in ``out`` wrote a checkpoint it could resume from."""
    from .show import CHECKPOINTS

    return any(os.path.exists(os.path.join(out, name)) for name in CHECKPOINTS)


def _fit_to_data(args) -> str:
    """``--data`` without ``--preset``: the ``folder`` preset, its batch and image size (and AWS's
    held-out count) fitted to the training images where not given; one line says what was chosen."""
    from .train import distributed
    from .train.data import array_dataset
    from .train.fit import FOLDER_PRESET, fit_to_data

    if array_dataset(args.data) is not None:  # CIFAR: its images are 32 px, the folder preset fits them as is
        return FOLDER_PRESET
    fitted = fit_to_data(args.data, search=hasattr(args, "val_count"), val_data=getattr(args, "val_data", None))
    for name in ("batch", "image_size") + (("val_count",) if hasattr(args, "val_count") else ()):
        if getattr(args, name, None) is None:
            setattr(args, name, getattr(fitted, name))
    if distributed.is_main():
        log.info(fitted.describe(args.data))
    return FOLDER_PRESET


def _settings_files(args) -> bool:
    """Apply the settings files to the command's defaults: a resumed run's own ``config.yaml``
    (after checking the folder holds a run of this kind), then ``--config``; True if any."""
    from .config import CONFIG_NAME, apply_config_file

    applied = False
    if getattr(args, "resume", False) and getattr(args, "out", None) and hasattr(args, "kind_class"):
        from .train import rundir

        rundir.check(args.out, resume=True, overwrite=args.overwrite, kind=args.kind_class.KIND)
        recorded = os.path.join(args.out, CONFIG_NAME)
        if os.path.isfile(recorded):  # the run's own settings: --resume needs no flag repeated
            apply_config_file(args.settings, recorded, flag="--resume: the run's")
            applied = True
    if getattr(args, "config", None):
        apply_config_file(args.settings, args.config)
        applied = True
    return applied


def _resume_hint(args) -> str:
    """``; resume with …`` for a run whose folder holds a checkpoint (how to start it again if it
    has none yet), else nothing."""
    from .train import rundir

    out = getattr(args, "out", None)
    kind = getattr(getattr(args, "kind_class", None), "KIND", None)
    if not (isinstance(out, str) and kind and os.path.isdir(out) and rundir.recorded_kind(out)):
        return ""
    if not _has_checkpoint(out):
        return f"; no checkpoint was written yet: start again with --out {out} --overwrite"
    return f"; resume with: {rundir.resume_command(kind, out)}"


STUDY_ALIASES = {"table4": "adversarial", "proxy": "aws"}
"""Old study names that still run (the study that replaced them)."""

STUDIES = {
    "regime": (".reproduce.regime", "run_regime_study"),
    "adversarial": (".reproduce.adversarial", "run_adversarial_study"),
    "aws": (".reproduce.aws", "run_aws_study"),
}
"""Study → (module, function); each takes (out, budget, results, seeds=, progress=, threads=, command=);
the adversarial and AWS studies also ``regime_record=`` (``--regime``)."""


def _reproduce(args) -> int:
    study = STUDY_ALIASES.get(args.study, args.study)
    default_out = os.path.join("runs", "reproduce", study if study != "dry-run" else f"dry-run-{args.preset}")
    options = _options(args, args.options_class)
    out = options.out or default_out
    if study in STUDIES:
        from .reproduce.record import command

        module, function = STUDIES[study]
        run_study = getattr(importlib.import_module(module, __package__), function)
        extra = {} if study == "regime" else {"regime_record": options.regime}
        if study == "regime" and options.regime is not None:
            raise UserError("--regime names the record the adversarial and AWS studies read; the sweep writes one")
        run_study(
            out,
            options.budget,
            options.results,
            seeds=options.seeds,
            progress=options.progress,
            threads=options.num_threads,
            command=command(args.argv),
            **extra,
        )
    else:
        from .reproduce.dry_run import dry_run

        result = dry_run(
            options.preset,
            options.search,
            out,
            batch=options.batch,
            M=options.M,
            device=options.device,
            progress=options.progress,
        )
        if str(result.get("verdict", "")).startswith("diverged"):
            return 1  # the dry run's check failed (its verdict is the last log line)
    return 0


def _show(args) -> int:
    from .show import describe, write

    write(describe(args.folder))  # the command's output, not a log
    return 0


def _bench(options: list[str]) -> int:
    import warnings

    from .bench.run import main as bench

    with warnings.catch_warnings():
        # DALI's deprecation notices about its own internals, one block per pipeline built: noise to a user
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"nvidia\.dali.*")
        bench(options)
    return 0


def _subparser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    """The subcommand parser ``name`` of ``parser``."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and name in action.choices:
            return action.choices[name]
    raise KeyError(name)


# -- the command tree -----------------------------------------------------------------------


def _verbosity(parser: argparse.ArgumentParser, default) -> None:
    """``--debug``, ``-v``/``-q``; ``default`` argparse.SUPPRESS after a command (the value
    given before it stays)."""
    parser.add_argument(
        "--debug",
        action="store_true",
        default=default if default is argparse.SUPPRESS else False,
        help="show the traceback of an error (a user error prints one line without it)",
    )
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "-v",
        "--verbose",
        dest="verbosity",
        action="store_const",
        const=1,
        default=default,
        help="log debug messages too",
    )
    group.add_argument(
        "-q",
        "--quiet",
        dest="verbosity",
        action="store_const",
        const=-1,
        default=default,
        help="log warnings and errors only, no progress bars",
    )
    parser.add_argument(
        "--rendezvous-timeout",
        type=float,
        metavar="SECONDS",
        default=default if default is argparse.SUPPRESS else None,
        help="under torchrun: how long each process waits for the others to join, and for each "
        "later collective (default: $FASTPOLICY_RENDEZVOUS_TIMEOUT, else torch's: 30 min gloo, 10 NCCL)",
    )


def _command(commands, name: str, help: str, run, *option_classes, **defaults) -> argparse.ArgumentParser:
    """A command ``name`` with a flag per field of ``option_classes`` (:func:`~.config.add_field_flags`)."""
    from .config import add_field_flags

    parser = commands.add_parser(name, help=help, description=help)
    _verbosity(parser, argparse.SUPPRESS)
    for options in option_classes:
        add_field_flags(parser, options)
    parser.set_defaults(run=run, settings=parser, **defaults)
    return parser


def build_parser() -> argparse.ArgumentParser:
    from .reproduce.options import DryRunOptions, SeededStudyOptions
    from .train.adversarial import AdversarialConfig, AdversarialSearch
    from .train.aws import AWSConfig, AWSSearch
    from .train.final import FinalTraining, TrainConfig
    from .train.runner import StartOptions

    parser = _Parser(prog="fastpolicy", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    _verbosity(parser, 0)
    commands = parser.add_subparsers(dest="command", required=True)
    searches = commands.add_parser("search", help="run a policy search").add_subparsers(dest="algorithm", required=True)
    runs = (
        (searches, "adversarial", AdversarialConfig, AdversarialSearch, "fastpolicy search adversarial"),
        (searches, "aws", AWSConfig, AWSSearch, "fastpolicy search aws"),
        (commands, "train", TrainConfig, FinalTraining, "fastpolicy train"),
    )
    for group, name, config_class, kind_class, command_line in runs:
        _command(
            group,
            name,
            _RUN_HELP[name],
            _run,
            StartOptions,
            config_class,
            config_class=config_class,
            kind_class=kind_class,
            command_line=command_line,
        )

    studies = commands.add_parser("reproduce", help="the papers' claims at small scale; ImageNet dry runs")
    studies_tree = studies.add_subparsers(dest="study", required=True)
    for name, options, text in (
        (
            "regime",
            SeededStudyOptions,
            "where does augmentation pay? the pre-registered sweep (training images × epochs) that picks the "
            "studies' cell: the baseline over-fits and TrivialAugmentWide beats it (Fashion-MNIST)",
        ),
        (
            "adversarial",
            SeededStudyOptions,
            "does the Adversarial AutoAugment controller learn, and beat TrivialAugment/RandAugment? "
            "(gated, paired seeds, Fashion-MNIST)",
        ),
        ("table4", SeededStudyOptions, "the old name of the adversarial study (an alias)"),
        (
            "aws",
            SeededStudyOptions,
            "AWS where augmentation helps: does its proxy rank policies as full training does, and does "
            "its PPO search beat TrivialAugment? (gated, paired seeds, Fashion-MNIST)",
        ),
        ("proxy", SeededStudyOptions, "the old name of the aws study (an alias)"),
        ("dry-run", DryRunOptions, "a preset's whole pipeline on a generated ImageNet-layout tree, a few steps"),
    ):
        cpu = {"device": "cpu"} if name != "dry-run" else {}  # the studies run on the CPU
        _command(studies_tree, name, text, _reproduce, options, options_class=options, study=name, **cpu)

    show = _command(commands, "show", "what a run is, how far it got, what it found, where its files are", _show)
    show.add_argument("folder", help="the run's folder (its --out)")
    from .data.shards import add_shards_flags, shards_command

    add_shards_flags(
        _command(commands, "shards", "convert an image folder to webdataset or TFRecord shards", shards_command)
    )
    bench = commands.add_parser(
        "bench", add_help=False, help="throughput beside its peers (fastpolicy bench --help for its options)"
    )
    bench.add_argument("options", nargs=argparse.REMAINDER)  # parsed by fastpolicy.bench.run
    return parser


_RUN_HELP = {
    "adversarial": "Adversarial AutoAugment (default: a short search on Fashion-MNIST)",
    "aws": "AWS: shared weights, then PPO over op pairs (default: a short search on Fashion-MNIST)",
    "train": "train from scratch with a policy file (AWS policy.json, a Policy, an adversarial schedule.json) "
    "or a standard policy (autoaugment, randaugment, trivialaugment_wide)",
}


_PATH_ERRNOS = frozenset(
    {
        errno.ENAMETOOLONG,
        errno.ENOTDIR,
        errno.EISDIR,
        errno.EEXIST,
        errno.ENOENT,
        errno.EACCES,
        errno.EPERM,
        errno.EROFS,
        errno.ENOSPC,
        errno.ELOOP,
    }
)
"""An OSError on a named path with one of these is the user's path (too long, read-only, full …)."""


def _is_user_error(error: BaseException) -> bool:
    """:data:`USER_ERRORS`, or an OSError about a path the user gave (:data:`_PATH_ERRNOS`)."""
    return isinstance(error, USER_ERRORS) or (
        isinstance(error, OSError) and error.filename is not None and error.errno in _PATH_ERRNOS
    )


def main(argv=None) -> int:
    """Run a command; under ``torchrun`` (``WORLD_SIZE`` > 1) each process joins the group first.

    A user error (:data:`USER_ERRORS`: a bad value, path, policy file, image or checkpoint, a
    refused run folder) prints ``fastpolicy: error: …`` naming the input and returns 2 (with
    ``--debug`` the traceback too); argparse reports bad flags the same way. Ctrl-C, at any
    moment (imports included), prints ``fastpolicy: interrupted`` and how to resume; returns 130.
    """
    parsed: list = []
    _starting(parsed)
    try:
        return _main(sys.argv[1:] if argv is None else list(argv), parsed)
    except KeyboardInterrupt:
        print(f"fastpolicy: interrupted{_resume_hint(parsed[-1]) if parsed else ''}", file=sys.stderr)
        return 130
    finally:
        _started()


_STARTING: dict = {"parsed": [], "active": False, "previous": None}
"""The command's start (imports, parsing, a run's set-up): its parsed arguments, whether
:func:`_interrupted_while_starting` is the SIGINT handler, and the handler it replaced."""


def _interrupted_while_starting(signum, frame) -> None:
    """SIGINT while the command starts: nothing is saved yet, and a KeyboardInterrupt raised inside
    an import (torch swallows one in its NumPy import, leaving NumPy half-built) or inside a C++
    callback (which aborts the process) would not end in one line. So: the line, exit 130, now."""
    parsed = _STARTING["parsed"]
    os.write(
        native_log.real_stderr_fd(), f"fastpolicy: interrupted{_resume_hint(parsed[-1]) if parsed else ''}\n".encode()
    )
    os._exit(130)


def _starting(parsed: list) -> None:
    """Install :func:`_interrupted_while_starting` (main thread only)."""
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGINT, _interrupted_while_starting)
        _STARTING.update(parsed=parsed, active=True, previous=previous)


def _started() -> None:
    """The command's work begins (or it ended): Ctrl-C raises KeyboardInterrupt again, which the
    command handles (a run saves nothing half-written; :func:`main` prints the resume hint)."""
    import signal

    if _STARTING["active"]:
        _STARTING["active"] = False
        previous = _STARTING["previous"]
        signal.signal(signal.SIGINT, previous if previous is not None else signal.default_int_handler)


def _main(argv: list[str], parsed: list) -> int:
    """:func:`main`; ``parsed`` receives the parsed arguments (for the interruption's hint)."""
    from .train import distributed

    leading = 0  # -v/-q/--debug may come before the command, bench's too
    while leading < len(argv) and argv[leading] in ("-v", "--verbose", "-q", "--quiet", "--debug"):
        leading += 1
    if argv[leading : leading + 1] == ["bench"]:
        from .log import setup

        setup(-1 if {"-q", "--quiet"} & set(argv[:leading]) else 1 if {"-v", "--verbose"} & set(argv[:leading]) else 0)
        _started()
        return _bench(argv[leading + 1 :])
    parser = build_parser()
    if not argv[leading:] or argv[leading:] in (["search"], ["reproduce"]):
        # no command (or a group without its subcommand): the help, not an error
        (parser if not argv[leading:] else _subparser(parser, argv[leading])).print_help()
        return 2
    args = parser.parse_args(argv)
    args.argv = argv  # the command line as given, recorded by the studies
    parsed.append(args)
    joined = False
    try:
        if _settings_files(args):
            args = parser.parse_args(argv)  # the files' settings as defaults, the flags over them
            args.argv = argv
            parsed.append(args)
        from .log import setup

        setup(args.verbosity, distributed.env_int("RANK", 0))  # before joining: the wait is logged
        joined = distributed.init_from_env(getattr(args, "device", None), args.rendezvous_timeout)
        if args.run is not _run:
            _started()  # a run ends its start once its folder and loaders are set up
        return args.run(args)
    except Exception as error:
        if not _is_user_error(error):
            raise
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
