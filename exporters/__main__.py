"""Command line: ``python -m exporters {data,export,verify,demo,show,digit}``."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from exporters.mnist import MnistError, default_cache_dir, load_mnist
from exporters.settings import TrainSettings
from model_store import MODEL_NAME, ModelStore, StoreError, default_root


def _say(message: str) -> None:
    print(message, flush=True)


def _store(args: argparse.Namespace) -> ModelStore:
    return ModelStore(Path(args.store).expanduser().resolve(), MODEL_NAME)


def _settings(args: argparse.Namespace) -> TrainSettings:
    return TrainSettings(
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        seed=args.seed,
        device=args.device,
        train_limit=args.train_limit,
    )


def cmd_data(args: argparse.Namespace) -> int:
    data = load_mnist(cache_dir=args.cache_dir)
    _say(
        f"MNIST from {data.source}: {len(data.train_labels)} training and {len(data.test_labels)} test images"
    )
    for name, sha in data.files.items():
        _say(f"  {name}  sha256 {sha}  verified")
    return 0


def verify_in_fresh_process(store: ModelStore, version: int, cache_dir: Path | None) -> bool:
    """Run ``verify`` in a new interpreter so nothing from this process can mask a broken artifact."""
    command = [
        sys.executable,
        "-m",
        "exporters",
        "verify",
        "--store",
        str(store.root),
        "--version",
        str(version),
    ]
    if cache_dir is not None:
        command += ["--cache-dir", str(cache_dir)]
    return subprocess.run(command, check=False).returncode == 0


def train_and_export(store: ModelStore, settings: TrainSettings, cache_dir: Path | None) -> int:
    """Train both models, export a new version, verify it; returns the version."""
    store.ensure_writable()  # fail before training (and before TensorFlow's import), not after
    from exporters import train_keras, train_torch
    from exporters.export import TrainedPair, export_version

    data = load_mnist(cache_dir=cache_dir)
    _say(f"MNIST: {data.source}")
    _say(f"Training Keras ({settings.epochs} epochs, batch {settings.batch_size}, seed {settings.seed})...")
    keras_result = train_keras.train(data, settings)
    _say(f"Keras: test accuracy {keras_result.test_accuracy:.2%} in {keras_result.train_seconds:.1f} s")
    _say(f"Training PyTorch ({settings.epochs} epochs, batch {settings.batch_size}, seed {settings.seed})...")
    torch_result = train_torch.train(data, settings)
    _say(f"PyTorch: test accuracy {torch_result.test_accuracy:.2%} in {torch_result.train_seconds:.1f} s")
    _say("Exporting SavedModel, TorchScript and TorchServe archive...")
    record = export_version(store, TrainedPair(keras_result, torch_result, settings), data)
    _say(f"Published {store.model_name} version {record.version} at {store.version_dir(record.version)}")
    return record.version


def _print_summary(store: ModelStore, version: int) -> None:
    from exporters.summary import version_table

    record = store.record(version)
    _say("")
    _say(f"{store.model_name} version {version}  (created {record.created_at})")
    _say(version_table(record))
    agreement = record.training.get("agreement")
    if agreement is not None:
        _say(f"Keras vs PyTorch agreement on the 10,000 test images: {agreement:.2%}")
    _say(f"Full SHA-256 checksums: {store.model_dir / 'manifest.json'}")


def cmd_export(args: argparse.Namespace) -> int:
    store = _store(args)
    version = train_and_export(store, _settings(args), args.cache_dir)
    if not args.skip_verify:
        _say(f"Verifying version {version} in a fresh process...")
        if not verify_in_fresh_process(store, version, args.cache_dir):
            _say(f"error: version {version} failed verification (see above)")
            return 1
    _print_summary(store, version)
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from exporters.summary import verification_table
    from exporters.verify import VerificationFailed, verify_version

    store = _store(args)
    versions = (
        store.versions() if args.version == "all" else [int(args.version or store.latest_version() or 0)]
    )
    if versions == [0] or not versions:
        print(
            f"error: no version in the store at {store.model_dir}; run `make export` first", file=sys.stderr
        )
        return 1
    data = load_mnist(cache_dir=args.cache_dir)
    for version in versions:
        started = time.perf_counter()
        try:
            report = verify_version(store, version, data)
        except (StoreError, VerificationFailed) as exc:
            print(f"error: version {version} failed verification: {exc}", file=sys.stderr)
            return 1
        elapsed = time.perf_counter() - started
        _say(f"Version {version}: verified in {elapsed:.1f} s (fresh process, full test set)")
        _say(verification_table(report))
        _say(f"Keras vs PyTorch agreement (reloaded artifacts): {report.agreement:.2%}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    store = _store(args)
    _say("[1/3] MNIST data")
    cmd_data(args)
    _say("[2/3] Model store")
    latest = store.latest_version()
    reuse = False
    if latest is not None and not args.retrain:
        _say(f"Found version {latest} in {store.model_dir}; verifying it before reuse...")
        reuse = verify_in_fresh_process(store, latest, args.cache_dir)
        if reuse:
            _say(f"Reusing verified version {latest} (no retraining; `make export` trains a new version).")
        else:
            _say(f"Version {latest} did not verify; training a new version instead.")
    if not reuse:
        latest = train_and_export(store, _settings(args), args.cache_dir)
        _say("[3/3] Verifying the new version in a fresh process...")
        if not verify_in_fresh_process(store, latest, args.cache_dir):
            _say(f"error: version {latest} failed verification (see above)")
            return 1
    else:
        _say("[3/3] Verified (above).")
    assert latest is not None
    _print_summary(store, latest)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    store = _store(args)
    versions = store.versions()
    if not versions:
        print(f"error: no version in the store at {store.model_dir}", file=sys.stderr)
        return 1
    for version in versions if args.version == "all" else [int(args.version or versions[-1])]:
        _print_summary(store, version)
    return 0


def cmd_digit(args: argparse.Namespace) -> int:
    from exporters.digit import write_digit

    data = load_mnist(cache_dir=args.cache_dir)
    if not 0 <= args.index < len(data.test_labels):
        raise ValueError(f"--index {args.index} is outside the test set (0..{len(data.test_labels) - 1})")
    size = write_digit(data.test_images[args.index], args.format, args.out)
    label = int(data.test_labels[args.index])
    _say(f"wrote {args.out} ({args.format}, {size:,} bytes): test image {args.index}, a {label}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    defaults = TrainSettings()
    parser = argparse.ArgumentParser(prog="python -m exporters", description=__doc__)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--store",
        default=str(default_root()),
        help="model store root (default: $MODEL_STORE_DIR or model_store/artifacts)",
    )
    common.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help=f"MNIST cache (default: $MNIST_CACHE_DIR or {default_cache_dir()})",
    )
    training = argparse.ArgumentParser(add_help=False)
    training.add_argument("--epochs", type=int, default=defaults.epochs, help="default %(default)s")
    training.add_argument("--batch-size", type=int, default=defaults.batch_size, help="default %(default)s")
    training.add_argument(
        "--learning-rate", type=float, default=defaults.learning_rate, help="default %(default)s"
    )
    training.add_argument("--seed", type=int, default=defaults.seed, help="default %(default)s")
    training.add_argument(
        "--device", default=defaults.device, help="auto (GPU if present), cpu, cuda, cuda:N"
    )
    training.add_argument("--train-limit", type=int, default=None, help="train on the first N images only")

    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("data", parents=[common], help="fetch, verify and cache MNIST").set_defaults(
        run=cmd_data
    )
    export = commands.add_parser(
        "export", parents=[common, training], help="train both models, export version N+1"
    )
    export.add_argument("--skip-verify", action="store_true", help="do not verify the new version")
    export.set_defaults(run=cmd_export)
    verify = commands.add_parser("verify", parents=[common], help="verify a version (default: the latest)")
    verify.add_argument("--version", default=None, help="a version number or 'all'")
    verify.set_defaults(run=cmd_verify)
    demo = commands.add_parser(
        "demo", parents=[common, training], help="data, train/export (or reuse), verify"
    )
    demo.add_argument("--retrain", action="store_true", help="train a new version even if one verifies")
    demo.set_defaults(run=cmd_demo)
    show = commands.add_parser("show", parents=[common], help="print the summary table of a version")
    show.add_argument("--version", default=None, help="a version number or 'all'")
    show.set_defaults(run=cmd_show)
    digit = commands.add_parser(
        "digit", parents=[common], help="write one MNIST test digit as a request body (PNG, V1 or V2 JSON)"
    )
    digit.add_argument("--index", type=int, default=0, help="test-set index (default 0, a 7)")
    digit.add_argument("--format", choices=("png", "v1", "v2"), default="png", help="default %(default)s")
    digit.add_argument("--out", type=Path, default=Path("digit.png"), help="default %(default)s")
    digit.set_defaults(run=cmd_digit)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except (MnistError, StoreError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: nothing half-written was published", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
