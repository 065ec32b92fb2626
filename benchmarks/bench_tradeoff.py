"""Issues 13 and 16: masked faces admitted against no-face pictures admitted, over the whole range
of door thresholds, so two designs are compared at the same no-face admission instead of at the
one point each build's threshold rule happens to pick.

    python benchmarks/bench_tradeoff.py NAME=BUNDLE[,BUNDLE...] ... [--out tradeoff.png]

Each NAME is one design over seeds (e.g. `base=runs/win_5/tinymask,runs/win_21/tinymask`). For every
bundle, the int8 model (TensorFlow Lite Micro, the board's kernels) scores the build's out-of-domain
sets: facemask-extra test close up and door-framed, and scenes-negative test. Every int8 output level
at or above the build's door threshold (at most 1% of unmasked faces admitted, close up and
door-framed; host.make.ood) is an operating point: (no-face admitted, masked admitted close up,
door-framed). Printed: per design, mean (sd) over its seeds of the masked faces admitted at the
lowest level that admits at most each no-face target; then, for 3-class bundles, the largest cap on
P(none) that admits no no-face picture at the build's threshold (a rule measured, not used) and the
masked faces admitted there. The picture draws every bundle's curve.
Prints numbers and writes the picture; asserts nothing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from host.errors import UserError, run_script  # noqa: E402
from host.make import bundle as bundle_mod  # noqa: E402
from host.make import checks, ood  # noqa: E402
from host.make import data as data_mod  # noqa: E402
from host.make.seeds import pooled  # noqa: E402

NO_FACE_TARGETS = (0.08, 0.06, 0.04, 0.03, 0.02, 0.01, 0.0)


def designs_of(specs: list[str]) -> dict[str, list[Path]]:
    out: dict[str, list[Path]] = {}
    for spec in specs:
        name, sep, paths = spec.partition("=")
        if not sep or not name or not paths:
            raise UserError(f"{spec!r}: write NAME=BUNDLE[,BUNDLE...], e.g. base=runs/win_5/tinymask")
        out[name] = [Path(p) for p in paths.split(",")]
    return out


def curve(payload: bytes, splits: dict) -> dict[str, np.ndarray]:
    """Scores only the three sets the curve needs: the close-up faces, their door-framed copies and
    the no-face pictures."""
    close_name = next(n for n in splits if n + ood.FRAMED in splits)
    nobody_name = ood.no_face_set(splits)  # the set the build's --max-no-face holds to the same target
    close, framed, nobody = (ood.score_split(payload, splits[n][0], n, splits[n][1])
                             for n in (close_name, close_name + ood.FRAMED, nobody_name))
    # which framing's unmasked faces set the 1% threshold: the other one could go lower
    alone = {"close_alone": ood.calibrate(close.scores, close.labels),
             "framed_alone": ood.calibrate(framed.scores, framed.labels)}
    return {**ood.operating_points(close, framed, nobody), **alone, **ood.none_cap_at_zero(close, framed, nobody)}


def level_at(points: dict[str, np.ndarray], target: float) -> str:
    i = ood.first_at_no_face(points, target)
    return "-" if i is None else f"{points['level'][i]:.3f}"


def plot(curves: dict[str, list[dict]], out: Path) -> None:
    """Per design, the mean over its seeds of the masked share at each no-face target (a seed that
    cannot reach a target leaves it out), with the seeds' range shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    targets = np.arange(0.0, 0.0801, 0.0025)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.8), sharex=True)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for (name, runs), colour in zip(curves.items(), colours):
        rows = [[ood.masked_at_no_face(r, t) for r in runs] for t in targets]
        keep = [i for i, row in enumerate(rows) if all(h is not None for h in row)]
        if not keep:
            continue
        x = 100 * targets[keep]
        for column, ax in enumerate(axes):
            values = np.array([[100 * h[column] for h in rows[i]] for i in keep])
            ax.plot(x, values.mean(axis=1), color=colour, label=f"{name} ({len(runs)})", drawstyle="steps-post")
            ax.fill_between(x, values.min(axis=1), values.max(axis=1), color=colour, alpha=0.12, step="post")
    for ax, title in zip(axes, ("masked faces admitted, close up", "masked faces admitted, door-framed")):
        ax.set_title(title)
        ax.set_xlabel("no-face pictures admitted at most (%), scenes-negative test")
        ax.set_ylabel("% (mean over seeds; shade: their range)")
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=8, loc="lower right")
    fig.suptitle("Masked faces admitted at the lowest door threshold that admits at most x% of no-face pictures"
                 " (and at most 1% of unmasked faces)", fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("designs", nargs="+", metavar="NAME=BUNDLE[,BUNDLE...]")
    parser.add_argument("--out", type=Path, default=Path("tradeoff.png"), help="the picture (default: %(default)s)")
    args = parser.parse_args(argv)
    designs = designs_of(args.designs)
    print("loading the shared sets (facemask-v1, facemask-extra, scenes-negative) ...", flush=True)
    dataset = data_mod.load_dataset(data_mod.shared_sets(), progress=True)
    by_size = {dataset.size: ood.eval_splits(dataset)}  # a bundle's own input size of the same pictures
    curves: dict[str, list[dict]] = {}
    for name, bundles in designs.items():
        for path in bundles:
            card = bundle_mod.load_card(path)
            payload = (path / card["model_file"]).read_bytes()
            size = checks.input_size(payload, path)
            if size not in by_size:
                by_size[size] = {n: (s.at(size), d) for n, (s, d) in by_size[dataset.size].items()}
            print(f"scoring {path} ...", flush=True)
            curves.setdefault(name, []).append(curve(payload, by_size[size]))
    print("\nmasked admitted (close up / door-framed) at the lowest threshold with no-face admission <= target,"
          " mean (sd) over seeds; '-' where a seed cannot reach it")
    print("| design | at the build's threshold: no-face | " + " | ".join(f"no-face <= {t:.0%}" for t in NO_FACE_TARGETS) + " |")
    print("|---|---:|" + "---:|" * len(NO_FACE_TARGETS))
    for name, runs in curves.items():
        cells = [pooled([float(r["no_face"][0]) for r in runs], "percent")]
        for target in NO_FACE_TARGETS:
            hits = [ood.masked_at_no_face(r, target) for r in runs]
            if any(h is None for h in hits):
                cells.append("-")
                continue
            cells.append(f"{pooled([h[0] for h in hits], 'percent')} / {pooled([h[1] for h in hits], 'percent')}")
        print(f"| {name} ({len(runs)}) | " + " | ".join(cells) + " |")
    print("\nthe threshold reaching each target, per bundle (deploy one with tools.deploy --set threshold=T);"
          " 'close / framed alone': the 1%-unmasked level of each framing by itself (the higher one is the build's)")
    print("| bundle | build's threshold | close / framed alone | "
          + " | ".join(f"no-face <= {t:.0%}" for t in NO_FACE_TARGETS) + " |")
    print("|---|---:|---:|" + "---:|" * len(NO_FACE_TARGETS))
    for name, bundles in designs.items():
        for path, points in zip(bundles, curves[name]):
            cells = [level_at(points, t) for t in NO_FACE_TARGETS]
            print(f"| {path} | {points['level'][0]:.3f} | {points['close_alone']:.3f} / {points['framed_alone']:.3f} | "
                  + " | ".join(cells) + " |")
    print("\nno no-face picture admitted by a cap on P(none) at the build's threshold instead (a rule measured for"
          " issue 16, not in the firmware): masked admitted close up / door-framed, mean (sd) over the seeds that reach it")
    print("| design | seeds reaching 0 | caps | masked admitted at the cap | same seeds, threshold only |")
    print("|---|---:|---|---:|---:|")
    for name, runs in curves.items():
        hits = [(r, ood.masked_at_no_face(r, 0.0)) for r in runs if r.get("cap") is not None]
        both = [(r, h) for r, h in hits if h is not None]
        caps = ", ".join(f"{r['cap']:.3f}" for r, _ in hits) or "-"
        at_cap = (f"{pooled([r['cap_close'] for r, _ in hits], 'percent')} / {pooled([r['cap_framed'] for r, _ in hits], 'percent')}"
                  if hits else "-")
        thr = (f"{pooled([h[0] for _, h in both], 'percent')} / {pooled([h[1] for _, h in both], 'percent')} ({len(both)})"
               if both else "-")
        print(f"| {name} ({len(runs)}) | {len(hits)} | {caps} | {at_cap} | {thr} |")
    plot(curves, args.out)
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(run_script(main))
