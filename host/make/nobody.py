"""Issue 16's figures for a bundle: what the door does when nobody is there, and what the gate costs.

- `long_run`: the real firmware/main.py on the simulated board over no-face pictures only (each held
  1-20 frames, as a coat, a wall or a covered lens stays a while), with the bundle's own config:
  door openings and the share of the time the door stood open.
- `still_run`: the same with a few pictures each held for a long time (a coat on a hook, a poster),
  with and without the firmware's still rule (`presence_still_ms`).
- `gate_cost`: the presence gate's added time per frame on the board (pixels examined x the
  simulator's per-pixel cost, plus per-call overhead) and the loop rate with and without it.

host.build puts both in the card (`nobody`); benchmarks/bench_presence.py prints them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

LONG_RUN_FRAMES = 10_000
LIMITED_FRAMES = 300  # with --limit (quick runs, tests): a short run of the no-face pictures


def frames_for(limit: int | None) -> int:
    return LIMITED_FRAMES if limit else LONG_RUN_FRAMES


def negative_frames(paths: list[Path], frames: int, seed: int) -> list[Path]:
    """At least `frames` frames: the pictures shuffled, each repeated 1-20 times."""
    rng = np.random.default_rng(seed)
    out: list[Path] = []
    while len(out) < frames:
        for i in rng.permutation(len(paths)):
            out.extend([paths[i]] * int(rng.integers(1, 21)))
    return out


def long_run(bundle, paths: list[Path], frames: int = LONG_RUN_FRAMES, seed: int = 16, gate_on: bool = True,
             board: str = "openmv_h7", threshold: float | None = None) -> dict:
    """Door openings over a simulated run of no-face pictures only (the bundle's debounce, and its
    threshold unless `threshold` is given, as `tools.deploy --set threshold=T` would)."""
    run = negative_frames(paths, frames, seed)
    config = {"presence_gate": gate_on, "report_ms": 0, "log_enabled": False, "require_log": False}
    if threshold is not None:
        config["threshold"] = float(threshold)
    return door_figures(bundle, run, config, board) | {"pictures": len(paths), "presence_gate": gate_on, "seed": seed}


def still_run(bundle, paths: list[Path], frames_each: int, still_ms: int | None = None,
              board: str = "openmv_h7") -> dict:
    """Each picture held for `frames_each` frames in turn (the bundle's config; `still_ms` overrides
    presence_still_ms, 0 turns the still rule off): door openings and the share of time open."""
    run = [p for p in paths for _ in range(frames_each)]
    config = {"report_ms": 0, "log_enabled": False, "require_log": False}
    if still_ms is not None:
        config["presence_still_ms"] = still_ms
    return door_figures(bundle, run, config, board) | {"pictures": len(paths), "frames_each": frames_each}


def door_figures(bundle, run: list[Path], config: dict, board: str) -> dict:
    from host.errors import UserError
    from host.sim import SimOptions, simulate

    result = simulate(SimOptions(frames=run, bundle=bundle, config=config, board=board))
    errors = result.errors()
    if errors:  # e.g. a model the board's TFLM refuses: no door at all is not "0 openings"
        raise UserError(f"{bundle}: the simulated board reports {errors[0][0]}: {errors[0][1]}; no door figures")
    history = result.relay.history + [(result.sim_ms, None)]
    open_ms = sum(t1 - t0 for (t0, level), (t1, _) in zip(history, history[1:]) if result.relay_active(level))
    return {"frames": result.frames, "openings": result.door_openings(), "sim_s": round(result.sim_ms / 1000, 1),
            "open_share": open_ms / result.sim_ms if result.sim_ms else 0.0, "wall_s": round(result.wall_s, 1)}


def gate_cost(config: dict, board, macs: int, input_size: int = 32) -> dict:
    """The presence gate's estimated cost per frame on the board, and the loop FPS with and without it
    (the loop's scaling for a model of that input_size)."""
    from host.sim import camera as sim_camera

    side = min(config["presence_block"], config["camera_window"] // config["presence_grid"])
    calls = config["presence_grid"] ** 2
    gate_ms = calls * sim_camera.STATS_MS_PER_CALL + calls * side * side * sim_camera.STATS_MS_PER_PIXEL
    frame_ms = board.frame_ms(macs, input_size)
    return {"calls": calls, "pixels": calls * side * side, "gate_ms": round(gate_ms, 3),
            "fps_without": round(1000.0 / frame_ms, 1), "fps_with": round(1000.0 / (frame_ms + gate_ms), 1)}


def no_face_paths(splits: dict) -> list[Path]:
    """The pictures of the out-of-domain set that holds only `none` images (scenes-negative test)."""
    from host.make.ood import no_face_set

    name = no_face_set(splits)
    return [] if name is None else list(splits[name][0].paths)


def card_fields(bundle_dir: Path, splits: dict, board_name: str, macs: int, frames: int = LONG_RUN_FRAMES,
                threshold: float | None = None) -> dict | None:
    """The card's `nobody`: the long run (gate on, as deployed; at `threshold` when given, else the
    card's) and the gate's cost; None without no-face pictures."""
    from host.boards import load_board
    from host.errors import UserError
    from host.make.checks import input_size
    from host.sim.bundle import load, render

    paths = no_face_paths(splits)
    if not paths:
        return None
    try:
        bundle = load(bundle_dir, board_name)
        config = render(bundle, board_name, {} if threshold is None else {"threshold": float(threshold)})
        size = input_size(bundle.model.read_bytes(), bundle.model)
        run = long_run(bundle_dir, paths, frames, board=board_name, threshold=config["threshold"])
    except UserError as exc:  # the board checks have passed, so this is the simulator's word: keep the bundle
        return {"error": str(exc)}
    return {"long_run": {**run, "open_share": round(run["open_share"], 4),
                         "what": "firmware/main.py on the simulated board over the no-face pictures only, each"
                                 " held 1-20 frames; the bundle's debounce and the threshold below, presence gate on",
                         "threshold": config["threshold"]},
            "gate": gate_cost(config, load_board(board_name), macs, size)}


def summary(fields: dict | None) -> str:
    if not fields:
        return "nobody there: not measured (no no-face pictures among the out-of-domain sets)"
    if "error" in fields:
        return f"nobody there: not measured ({fields['error']})"
    run, gate = fields["long_run"], fields["gate"]
    return (f"nobody there: {run['openings']} door opening(s) over {run['frames']:,} frames of {run['pictures']} no-face"
            f" pictures (door open {100 * run['open_share']:.1f}% of the time); presence gate {gate['gate_ms']:.2f} ms"
            f" per frame, loop {gate['fps_without']:.1f} -> {gate['fps_with']:.1f} FPS")
