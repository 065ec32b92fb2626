"""Put a model bundle, its config.json and the firmware on the camera, and prove it arrived.

    python -m tools.deploy --board openmv_h7 [--port PORT] [--set key=value ...] [--dry-run]

Steps, each one `mpremote` invocation: probe (firmware, storage layout, SD card, hashes of what
is there), copy every changed file to `<name>.tmp`, rename the copies over the real names, verify
every file by sha256, set the camera's clock (RTC) to the host's UTC time (unless --no-set-clock;
the log header records it, so the report can show wall-clock times), reset the camera so the new
main.py starts. A deploy cut off at any point leaves each real name holding a complete file, old or
new; running it again finishes the job.
"""

from __future__ import annotations

import argparse
import datetime
import json
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from host.boards import BoardProfile, available_boards, load_board
from host.errors import UserError, run_cli
from tools import snippets
from tools.payload import (
    DEFAULT_BUNDLE,
    firmware_files,
    firmware_module,
    load_bundle,
    load_site_config,
    parse_overrides,
    render_config,
    sha256_file,
)
from tools.remote import Remote


@dataclass
class LocalFile:
    name: str  # name on the camera, relative to the storage root
    path: Path
    size: int
    sha256: str
    status: str = "new"  # new, updated or unchanged, once the camera has been probed


def version_tuple(text: str) -> tuple:
    digits = []
    for part in str(text).lstrip("v").split("."):
        number = "".join(c for c in part if c.isdigit())
        digits.append(int(number) if number else 0)
    return tuple(digits)


def needs_sd_card(board: BoardProfile, config: dict) -> bool:
    storage = board.data.get("storage", {})
    writes_card = config.get("log_enabled") or config.get("capture_mode", "off") != "off"
    return bool(storage.get("sd_required_for_logging")) and bool(writes_card)


def choose_root(info: dict, target: str, board: BoardProfile, config: dict) -> tuple[str, bool]:
    """(storage root to deploy to, SD card present) from what the probe saw; one clear error when
    the camera cannot take the bundle."""
    roots = info["roots"]
    modern = "flash" in info["top"]
    if modern:
        has_sd = "/sdcard" in roots
    elif info.get("card") is not None:  # firmware < 4.6: one filesystem at /, the card if the pin says so
        has_sd = bool(info["card"])  # the firmware's own rule (firmware/storage.py card_present)
    else:  # no card-detect API: the firmware's last resort, size (right on the H7 alone)
        total = (roots.get("/", {}).get("vfs") or [0, 0])[0]
        has_sd = total > firmware_module("storage").FLASH_FS_BYTES
    if needs_sd_card(board, config) and not has_sd:
        raise UserError(f"the camera has no SD card, and {board.name} needs one for logging and captures: "
                        f"insert a FAT-formatted card, or deploy with --set log_enabled=false")
    if target == "sdcard":
        if not has_sd:
            raise UserError("--target sdcard: the camera has no SD card; insert one or use --target auto")
        return ("/sdcard" if modern else "/"), has_sd
    if target == "flash":
        if has_sd:
            where = ("the camera runs main.py from /sdcard when a card is inserted" if modern
                     else "firmware before 4.6 cannot reach the flash while a card is inserted")
            raise UserError(f"--target flash: {where}; remove the card or use --target auto")
        return ("/flash" if modern else "/"), has_sd
    if modern:
        return ("/sdcard" if has_sd else "/flash"), has_sd
    return "/", has_sd


def assumed_root(target: str, board: BoardProfile) -> str:
    """Dry runs do not connect: assume the profile's default firmware with a card inserted."""
    firmware = board.data.get("firmware", {})
    modern = version_tuple(firmware.get("default_version", "4.6.0")) >= version_tuple(firmware.get("sdcard_mount_from", "4.6.0"))
    if not modern:
        return "/"
    return "/flash" if target == "flash" else "/sdcard"


def board_path(root: str, name: str) -> str:
    return root.rstrip("/") + "/" + name


def local_files(bundle, config: dict, staging: Path) -> list[LocalFile]:
    config_path = staging / "config.json"
    config_path.write_text(json.dumps(config, indent=1) + "\n")
    paths = [bundle.model, bundle.labels, config_path, *firmware_files()]
    names = [p.name for p in paths]
    if len(set(names)) != len(names):
        raise UserError(f"two files would share a name on the camera: {sorted(names)}")
    return [LocalFile(p.name, p, p.stat().st_size, sha256_file(p)) for p in paths]


def copy_commands(files: list[LocalFile], root: str) -> list[list[str]]:
    return [["fs", "cp", "-f", str(f.path), ":" + board_path(root, f.name) + ".tmp"] for f in files]


def plan_changes(files: list[LocalFile], on_board: dict) -> list[LocalFile]:
    """Mark each file new/updated/unchanged from the probe's hashes; return the ones to copy."""
    for f in files:
        there = on_board.get(f.name)
        f.status = "new" if there is None else ("unchanged" if there[1] == f.sha256 else "updated")
    return [f for f in files if f.status != "unchanged"]


def report(files: list[LocalFile], root: str) -> None:
    width = max(len(f.name) for f in files)
    print(f"{'file':<{width}}  {'bytes':>8}  sha256        status   (on the camera in {root})")
    for f in files:
        print(f"{f.name:<{width}}  {f.size:>8}  {f.sha256[:12]}  {f.status}")
    counts = {s: sum(f.status == s for f in files) for s in ("new", "updated", "unchanged")}
    print(f"{counts['new']} new, {counts['updated']} updated, {counts['unchanged']} unchanged")


def verify(remote: Remote, files: list[LocalFile], root: str) -> None:
    found = remote.run_snippet("verify", snippets.hashes([board_path(root, f.name) for f in files]))
    bad = []
    for f in files:
        there = found.get(board_path(root, f.name))
        if there is None:
            bad.append(f"{f.name} is missing")
        elif there[1] != f.sha256 or there[0] != f.size:
            bad.append(f"{f.name} has sha256 {there[1][:12]} ({there[0]} bytes), expected {f.sha256[:12]} ({f.size} bytes)")
    if bad:
        raise UserError(f"verification FAILED on the camera ({root}): " + "; ".join(bad)
                        + ". The storage may be failing: deploy again, and replace the SD card if it repeats")
    print(f"verified {len(files)} files on the camera by sha256")


def utc_now() -> datetime.datetime:
    """The host's clock, as UTC."""
    return datetime.datetime.now(datetime.timezone.utc)


def clock_text(when: datetime.datetime) -> str:
    return when.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def set_clock(remote: Remote) -> bool:
    """Set the camera's RTC to the host's UTC time. Never fails the deploy: a camera that cannot take
    the time gets one warning line, and its logs then carry uptime only."""
    when = utc_now()
    try:
        answer = remote.run_snippet("clock", snippets.set_clock(when))
    except UserError as exc:
        reason = str(exc)
    else:
        if isinstance(answer, dict) and answer.get("set") is not None:
            print(f"camera clock set to {clock_text(when)} (UTC, from this computer): "
                  f"its logs will carry wall-clock times")
            return True
        reason = (answer or {}).get("error") if isinstance(answer, dict) else repr(answer)
    print(f"warning: could not set the camera's clock ({reason}); the bundle is installed, "
          f"and its logs will carry uptime since boot only", file=sys.stderr)
    return False


def dry_run(remote: Remote, files: list[LocalFile], args, board: BoardProfile) -> int:
    root = assumed_root(args.target, board)
    print(f"# dry run: nothing is sent. config.json is staged at {files[2].path}")
    print(f"# storage root assumed {root} (the real run probes the camera and skips unchanged files)")
    remote.run("probe", ["exec", snippets.probe([f.name for f in files])])
    remote.run("copy", *copy_commands(files, root))
    pairs = [(board_path(root, f.name) + ".tmp", board_path(root, f.name)) for f in files]
    remote.run("install", ["exec", snippets.install(pairs, [])])
    remote.run("verify", ["exec", snippets.hashes([board_path(root, f.name) for f in files])])
    if not args.no_set_clock:
        when = utc_now()
        print(f"# set the camera's clock to the host's UTC time (a real run sends the time it runs at; here {clock_text(when)})")
        remote.run("clock", ["exec", snippets.set_clock(when)])
    if not args.no_reset:
        remote.run("reset", ["exec", "--no-follow", snippets.reset()])
    return 0


def deploy(remote: Remote, files: list[LocalFile], args, board: BoardProfile, config: dict) -> None:
    info = remote.run_snippet("probe", snippets.probe([f.name for f in files]))
    root, has_sd = choose_root(info, args.target, board, config)
    print(f"camera on {remote.device}: OpenMV firmware {info['firmware'] or 'unknown'}, "
          f"board id {info['board_id'] or 'unknown'}, SD card {'yes' if has_sd else 'no'}; deploying to {root}")
    on_board = info["roots"][root]
    changed = plan_changes(files, on_board["files"])
    stale = [board_path(root, name) for name in on_board["stale"]
             if name.removesuffix(".tmp").removesuffix(".old") not in {f.name for f in changed}]
    if stale:
        print(f"removing {len(stale)} leftover file(s) of an interrupted deploy: {', '.join(stale)}")
    if not changed and not stale:
        report(files, root)
        print("the camera already holds this exact bundle; nothing to copy")
        return
    need, free = sum(f.size for f in changed), (on_board.get("vfs") or [0, 0])[1]
    if need > free:
        hint = "insert an SD card" if root == "/flash" else "free some space on the card"
        raise UserError(f"not enough space on the camera's {root}: {need} bytes to copy, {free} free; {hint}")
    print(f"copying {len(changed)} file(s), {need} bytes, to {root} as .tmp: {', '.join(f.name for f in changed)}")
    pairs = [(board_path(root, f.name) + ".tmp", board_path(root, f.name)) for f in changed]
    try:
        remote.run("copy", *copy_commands(changed, root))
        print(f"renaming {len(changed)} file(s) into place")
        remote.run_snippet("rename", snippets.install(pairs, stale))
    except UserError as exc:
        raise UserError(f"{exc}; each file on the camera is still whole (old or new): deploy again to finish") from None
    verify(remote, files, root)
    report(files, root)


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m tools.deploy", description=__doc__.splitlines()[0])
    parser.add_argument("--board", required=True, help=f"board profile: {', '.join(available_boards())}")
    parser.add_argument("--port", help="serial port of the camera (default: the first USB serial port)")
    parser.add_argument("--bundle", type=Path, default=DEFAULT_BUNDLE, help="model bundle folder (default: %(default)s)")
    parser.add_argument("--config", type=Path, metavar="FILE",
                        help="JSON object of config values for this installation (applied before --set)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config.json value, for example --set threshold=0.7 (repeatable)")
    parser.add_argument("--target", choices=("auto", "sdcard", "flash"), default="auto",
                        help="storage to deploy to (default: the SD card if inserted, else the flash)")
    parser.add_argument("--dry-run", action="store_true", help="print the mpremote commands; touch nothing")
    parser.add_argument("--no-reset", action="store_true", help="leave the camera at the REPL afterwards")
    parser.add_argument("--no-set-clock", action="store_true",
                        help="leave the camera's clock (RTC) as it is; by default it is set to this computer's UTC time")
    parser.add_argument("--verbose", action="store_true", help="show every mpremote command and its output")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    board = load_board(args.board)
    bundle = load_bundle(args.bundle, board)
    overrides = load_site_config(args.config) if args.config else {}
    overrides.update(parse_overrides(args.set))
    config = render_config(bundle, board, overrides)
    staging = Path(tempfile.mkdtemp(prefix="tinymask-deploy-"))
    files = local_files(bundle, config, staging)
    remote = Remote(args.port, verbose=args.verbose, dry_run=args.dry_run)
    if args.dry_run:
        return dry_run(remote, files, args, board)
    remote.check_port()
    try:
        deploy(remote, files, args, board, config)
        if not args.no_set_clock:
            set_clock(remote)
    finally:
        reset = not args.no_reset and remote.reset_quietly()
        shutil.rmtree(staging, ignore_errors=True)
    if reset:
        print("camera reset: the door program starts with the new bundle")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
