"""Does a model fit the board's heap? model + arena + firmware against the largest GC heap block.

`ml.Model(path)` copies the whole file into ONE heap block (`host.sim.heap.model_copy_bytes`: from 4.6.0
the size rounded up to 32 bytes plus 31) and keeps its
tensor arena (with TFLM's extra), its op resolver and its interpreter on the heap (4.5.6+,
`host.sim.heap.backend_bytes`); the firmware's own modules keep `firmware_retained_bytes`
(measured under MicroPython: `python -m host.sim.heap`). An allocation never spans two heap blocks,
so the figure that matters is the largest block of the board at that firmware range, with
`margin_bytes` kept free (boards/<name>.json "memory"). Legacy `tf` (up to 4.5.5) fb_allocs the
arena per call, so there only model + firmware go on the heap.
"""

from __future__ import annotations

from dataclasses import dataclass

from host.boards import BoardProfile
from host.sim.heap import (
    MemoryRange,
    backend_bytes,
    firmware_retained_bytes,
    memory_range,
    model_copy_bytes,
    ranges,
)


@dataclass
class Fit:
    range: MemoryRange
    model_bytes: int
    arena_bytes: int
    firmware_bytes: int
    margin_bytes: int

    @property
    def overhead_bytes(self) -> int:
        """What the heap copy of the file takes beyond the file (alignment)."""
        return model_copy_bytes(self.model_bytes, self.range.first) - self.model_bytes

    @property
    def backend(self) -> int:
        """Arena, op resolver and interpreter on the heap (0 for legacy tf: its arena is fb_alloc'd per call)."""
        return backend_bytes(self.arena_bytes, self.range.leaks_fb_alloc) if self.range.arena_on == "heap" else 0

    @property
    def need(self) -> int:
        return self.model_bytes + self.overhead_bytes + self.backend + self.firmware_bytes

    @property
    def headroom(self) -> int:
        return self.range.largest_block - self.need

    @property
    def ok(self) -> bool:
        return self.headroom >= self.margin_bytes

    def sentence(self) -> str:
        arena = (f" + arena {self.arena_bytes:,} with resolver and interpreter {self.backend:,}"
                 if self.range.arena_on == "heap" else " (arena in fb_alloc)")
        return (f"firmware {self.range.label}: model {self.model_bytes:,} + {self.overhead_bytes}{arena} + firmware "
                f"{self.firmware_bytes:,} = {self.need:,} bytes in a largest heap block of {self.range.largest_block:,}"
                f" (headroom {self.headroom:,}, margin {self.margin_bytes:,})")


def _memory(board: BoardProfile) -> dict:
    return board.data.get("memory") or {}


def fits(board: BoardProfile, model_bytes: int, arena_bytes: int) -> list[Fit]:
    """One Fit per firmware range of the board profile (empty when the profile has no memory model)."""
    memory = _memory(board)
    return [Fit(r, int(model_bytes), int(arena_bytes), firmware_retained_bytes(board.data),
                int(memory.get("margin_bytes", 0)))
            for r in ranges(board.data)]


def fit_at(board: BoardProfile, version: tuple, model_bytes: int, arena_bytes: int) -> Fit | None:
    spec = memory_range(board.data, version)
    if spec is None:
        return None
    return next(f for f in fits(board, model_bytes, arena_bytes) if f.range.label == spec.label)


def default_version(board: BoardProfile) -> tuple:
    text = board.data.get("firmware", {}).get("default_version", "4.6.0")
    return tuple(int(p) for p in text.split("."))


def heap_check(model_bytes: int, arena_bytes: int, board: BoardProfile) -> tuple[str, bool, str]:
    """(name, ok, detail) for the build's check list, at the profile's default firmware."""
    fit = fit_at(board, default_version(board), model_bytes, arena_bytes)
    if fit is None:
        return "heap fit", True, f"{board.name} has no memory model for its default firmware; not checked"
    detail = fit.sentence()
    if not fit.ok:
        detail += "; the model and its arena must sit in one heap block: build a smaller model"
    return "heap fit", fit.ok, detail


def headroom_lines(model_bytes: int, arena_bytes: int, board: BoardProfile) -> list[str]:
    """The build table's rows: headroom in the largest heap block for each supported firmware range."""
    rows = []
    for fit in fits(board, model_bytes, arena_bytes):
        verdict = "ok" if fit.ok else ("tight" if fit.headroom >= 0 else "DOES NOT FIT")
        rows.append(f"{'heap ' + fit.range.label:22}{fit.headroom:>10,}  headroom of {fit.range.largest_block:,} "
                    f"(needs {fit.need:,}; margin {fit.margin_bytes:,}) {verdict}")
    return rows


def table(board: BoardProfile, model_bytes: int, arena_bytes: int) -> str:
    """Markdown table: one row per firmware range (docs and the closing report)."""
    lines = ["| board | firmware | largest heap block | model + alignment + arena, resolver, interpreter + firmware | headroom "
             "| fits (margin) |", "|---|---|---:|---:|---:|---|"]
    for fit in fits(board, model_bytes, arena_bytes):
        lines.append(f"| {board.name} | {fit.range.label} | {fit.range.largest_block:,} | "
                     f"{fit.model_bytes:,} + {fit.overhead_bytes} + {fit.backend:,} + {fit.firmware_bytes:,} = {fit.need:,} | "
                     f"{fit.headroom:,} | {'yes' if fit.ok else 'NO'} ({fit.margin_bytes:,}) |")
    return "\n".join(lines)


if __name__ == "__main__":  # python -m host.make.memfit [bundle]
    import json
    import sys
    from pathlib import Path

    from host.boards import available_boards, load_board

    folder = Path(sys.argv[1] if len(sys.argv) > 1 else "models/tinymask")
    card = json.loads((folder / "model_card.json").read_text())
    for name in available_boards():
        print(table(load_board(name), card["model_bytes"], card["arena_bytes"]))
        print()
