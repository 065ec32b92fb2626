"""Image folders to a budget-checked int8 model bundle (`python -m host.build`, `tinymask build`).

The bundle goes to runs/<name>/ (an experiment); `--publish` writes models/<name>/ through the gate
of host/make/publish.py (accuracy floor, test-split size, never over a bundle that measures better).

Stages (each also runnable alone): host.make.data (decode, validate, split) -> host.train (Keras float32)
-> host.quantize (full int8) -> host.checks (board budgets) -> host.evaluate (TFLM int8 and Keras
float32 on the test split) -> host.make.bundle (atomic write of models/<name>/).
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

from host import tflm
from host.boards import available_boards, load_board
from host.errors import UserError, output_folder, run_cli
from host.make import bundle, checks, evaluate, memfit, nobody, ood, publish, quantize, repro, train
from host.make import data as data_mod
from host.make import model as model_mod
from host.make.card import bundle_card

DEFAULT_MODELS_DIR = Path(__file__).resolve().parents[2] / "models"


def stage_line(text: str) -> None:
    print(f"\n== {text}", flush=True)


def summary_table(card: dict, results: dict, bundle_dir: Path, total_seconds: float) -> str:
    budgets, est = card["budgets"], card["estimate"]
    lines = [
        evaluate.metrics_table(results),
        tflm.Verification(**results["board_tflm"]).line(),
        "",
        f"{'model bytes':22}{card['model_bytes']:>10,}  budget {budgets['model_bytes']:,} ({card['board']})",
        f"{'tensor arena bytes':22}{card['arena_bytes']:>10,}  budget {budgets['arena_bytes']:,}",
        *memfit.headroom_lines(card["model_bytes"], card["arena_bytes"], load_board(card["board"])),
        f"{'parameters':22}{card['params']:>10,}",
        f"{'MACs per frame':22}{card['macs']:>10,}",
        f"{'est. inference':22}{est['inference_ms']:>10.1f} ms  at {est['macs_per_cycle']} MAC/cycle",
        counted_line(est.get("counted")),
        f"{'est. frame rate':22}{est['fps']:>10.1f} FPS  (frame {est['frame_ms']:.1f} ms incl. camera and log)",
        f"{'build time':22}{total_seconds:>10.0f} s",
        f"{'bundle':22}{bundle_dir}",
    ]
    return "\n".join(lines)


def counted_line(counted: dict | None) -> str:
    if not counted or counted.get("ms") is None:
        return f"{'counted inference':22}{'-':>10}     {(counted or {}).get('why', 'not counted')}"
    return (f"{'counted inference':22}{counted['ms']:>10.1f} ms  {counted['instructions']:,} instructions of the board's"
            f" libtflm on an emulated Cortex-M7 x {counted['cycles_per_instruction']} cycles each (docs/mcu.md)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m host.build", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    train.add_arguments(parser)
    parser.add_argument("--board", default="openmv_h7", help=f"board profile: {', '.join(available_boards())} (default: %(default)s)")
    parser.add_argument("--name", default="tinymask", help="bundle name: models/<name>/<name>.tflite (default: %(default)s)")
    publish.add_arguments(parser)
    parser.add_argument("--prune", type=float, default=None, metavar="RATE",
                        help="remove this fraction of every convolution's filters (L1 norm) after training, then"
                             " fine-tune: a compare row's pruned model as a bundle, e.g. --prune 0.5")
    parser.add_argument("--prune-method", default="one-shot", choices=("one-shot", "iterative"),
                        help="with --prune (default: %(default)s)")
    parser.add_argument("--fine-tune-epochs", type=int, default=40, help="with --prune (default: %(default)s, as compare)")
    parser.add_argument("--no-determinism", dest="determinism", action="store_false",
                        help="allow TensorFlow's faster non-deterministic kernels (the same seed may then give"
                             " a slightly different model)")
    parser.add_argument("--representative", type=int, default=300, help="representative images for quantization (default: %(default)s)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars or per-epoch lines")
    parser.add_argument("--eval-data", type=Path, nargs="*", default=None, metavar="DIR",
                        help="more out-of-domain sets, measured on their test split and never trained on (default: the"
                             " shared facemask-extra and scenes-negative when --data does not include them)")
    parser.add_argument("--max-no-face", type=float, default=None, metavar="SHARE",
                        help="a stricter door: the threshold also admits at most this share of the no-face pictures"
                             " (scenes-negative test), e.g. 0.02; the card states what it costs in masked faces")
    args = parser.parse_args(argv)
    ood.check_share(args.max_no_face, "--max-no-face")
    start = time.time()
    progress = not args.quiet
    board = load_board(args.board)
    config = train.config_from_args(args)
    models_dir, publishing = publish.destination(args)
    if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}", args.name):
        raise UserError(f"--name {args.name!r}: the bundle's folder and file name: letters, digits, '_', '-' or '.',"
                        " not starting with '.', e.g. --name door-v2")
    output_folder(models_dir, "--models-dir" if args.models_dir else "--out")
    if args.prune is not None and not 0.0 < args.prune < 1.0:
        raise UserError(f"--prune {args.prune}: a fraction of the filters above 0 and below 1, e.g. 0.5")
    if args.prune is not None and config.hard_negatives > 0:
        raise UserError("--prune with --hard-negatives: the fine-tuning after pruning does not mine, so the card would"
                        " claim a training the pruned model did not get; use one of them")
    if args.determinism:
        repro.make_deterministic(args.seed)

    size = model_mod.input_size(config.arch)  # every picture is decoded for the design's input
    train.check_input_size(config, size)

    stage_line(f"data (board pixels at {size}x{size}, {config.arch}'s input)")
    refuse_test_only_set(args.data)
    root = args.data or train.recipe_data(args.recipe)
    dataset = data_mod.load_dataset(root, seed=args.seed, limit=args.limit, progress=progress,
                                    hold_out_sources=tuple(args.hold_out_sources), size=size)
    counts = dataset.counts()
    for split, c in counts.items():
        print(f"  {split:5} " + "  ".join(f"{label} {n}" for label, n in c.items()))
    print(f"  layout {dataset.layout}; {len(dataset.skipped)} file(s) skipped")
    if len(dataset.roots) > 1:
        print(f"  {len(dataset.dropped_near_duplicates)} training image(s) dropped as near-duplicates of a test image"
              f" (average hash distance <= {data_mod.NEAR_DUPLICATE_DISTANCE}; listed in the model card)")
        for d in dataset.dropped_near_duplicates[:10]:
            print(f"    {d.path} ~ {d.test_image} (distance {d.distance})")
    if dataset.skipped:
        print(data_mod.skipped_report(dataset.skipped[:20]))
        if len(dataset.skipped) > 20:
            print(f"  ... and {len(dataset.skipped) - 20} more (listed in the model card)")

    ood_splits = None
    if args.max_no_face is not None:  # refused now, not after the training, when nothing can be held to it
        ood_splits = ood.eval_splits(dataset, args.eval_data, args.limit)
        ood.require_no_face(ood_splits, args.max_no_face)

    stage_line(f"train {config.arch} ({config.epochs} epochs, augment {config.augment})")
    trained = train.train(dataset, config, verbose=progress)
    print(f"  best epoch {trained.best_epoch}: val_accuracy {trained.best_val_accuracy:.4f} ({trained.seconds:.0f} s)")
    if args.prune is not None:
        trained = prune_trained(trained, dataset, config, args, progress)

    stage_line("quantize to int8")
    payload = quantize.quantize(trained.model, quantize.representative_pixels(dataset.train, args.representative, args.seed))

    stage_line(f"check against {board.name}")
    facts = checks.inspect_model(payload, board)
    results_checks = checks.run_checks(facts, board)
    print(checks.format_checks(results_checks))
    checks.refuse_if_failed(results_checks, f"{args.name} (nothing written to {models_dir})")

    stage_line("evaluate on the test split (int8 as the board's TFLM computes it, float32 with Keras)")
    results = evaluate.evaluate(trained.model, payload, dataset.test, progress, dataset.labels)
    for miss in results["misclassified_int8"]:
        miss["path"] = dataset.relative(Path(miss["path"]))

    stage_line("out-of-domain measure and door threshold (int8 with TFLM)")
    if ood_splits is None:
        ood_splits = ood.eval_splits(dataset, args.eval_data, args.limit)
    door = ood.measure(payload, dataset, progress=progress, splits=ood_splits, max_no_face=args.max_no_face)
    print(ood.summary(door))

    macs = model_mod.count_macs(trained.model)
    params = int(trained.model.count_params())
    card = bundle_card(args.name, board, facts, macs, params, results, config, dataset, trained.seconds, door, payload)
    card["training"]["deterministic"] = args.determinism
    card["training"]["recipe"] = args.recipe
    if args.prune is not None:
        card["training"]["prune"] = {"rate": args.prune, "method": args.prune_method,
                                     "fine_tune_epochs": args.fine_tune_epochs, "filters": trained.filters,
                                     "fine_tune_targets": "hard labels (no mixup, no teacher)"}

    if publishing:
        stage_line(f"publish to {models_dir / args.name} (the gate: host/make/publish.py)")
        door_splits = [ood_splits[n][0] for n in (door["calibration"], door.get("calibration_framed")) if n in ood_splits]
        if args.max_no_face is not None:
            print(f"  the gate compares models at their faces' thresholds (<= 1% unmasked); this card ships"
                  f" {door['threshold']:.4f} for <= {args.max_no_face * 100:g}% no-face as well")
        print("\n".join(publish.check(models_dir / args.name, card, dataset.test, publish.gate_from_args(args),
                                      payload, door_splits)))
    def fill(staging: Path) -> bool:
        stage_line("nobody there: a long simulated run of no-face pictures (issue 16)")
        card["nobody"] = nobody.card_fields(staging, ood_splits, args.board, macs, nobody.frames_for(args.limit))
        print(nobody.summary(card["nobody"]))
        evaluate.write_confusion(results["int8"], staging, "int8 (TFLM) on test")
        train.plots.training_curves(trained.history, trained.best_epoch, staging / "training_curves.png")
        (staging / "metrics.json").write_text(json.dumps(results, indent=2) + "\n")
        card["training"]["build_seconds"] = round(time.time() - start, 1)  # all stages but the final swap
        return True

    bundle_dir = bundle.write(models_dir, args.name, payload, dataset.labels, card, fill)

    stage_line("done")
    print(summary_table(card, results, bundle_dir, time.time() - start))
    if not publishing:
        problems = publish.floor_problems(card, publish.gate_from_args(args))
        print(f"\nan experiment: {bundle_dir} (tools.deploy --bundle {bundle_dir});"
              + (f" not publishable: {'; '.join(problems)}" if problems else " --publish makes it models/" + args.name))
    return 0


def refuse_test_only_set(data) -> None:
    """An on-device test set (tools.dataset's default) has only a test split: say what to do with it."""
    folders = data if isinstance(data, (list, tuple)) else [data] if data else []
    for folder in folders:
        samples = data_mod.discover(Path(folder))[0]
        if samples and all(s.split == "test" for s in samples):
            raise UserError(
                f"{folder}: every image is in the test split (an on-device test set), nothing to train on."
                f" Measure a bundle on it: tinymask evaluate --tflite models/tinymask/tinymask.tflite --data {folder};"
                f" to train on it, remake it with tinymask dataset --from ARCHIVE --to {folder} --split none")


def prune_trained(trained, dataset, config, args, progress):
    """L1-norm filter pruning of the trained model, then fine-tuning (host/make/prune.py), as compare's
    pruned rows: a refit model is tuned on train + validation and keeps its last epoch."""
    from host.make import prune

    stage_line(f"prune {args.prune:g} of the filters ({args.prune_method}), fine-tune {args.fine_tune_epochs} epochs")
    tune = prune.fine_tune_like(config, args.fine_tune_epochs, progress)
    method = prune.one_shot if args.prune_method == "one-shot" else prune.iterative
    result = method(trained.model, args.prune, dataset, tune)
    print(f"  filters kept {result.filters} ({result.seconds:.0f} s)")
    trained.model, trained.filters = result.model, result.filters
    return trained


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
