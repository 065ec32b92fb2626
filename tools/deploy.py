"""Put a model bundle, its config.json and the firmware on the camera, and prove it arrived.

    python -m tools.deploy --board openmv_h7 [--port PORT] [--set key=value ...] [--dry-run]

Model, labels, config.json and firmware go on the camera as one set, in a folder of their own
(`tmset/<n>/`), and the card's main.py is the set loader (firmware/tmboot.py), which starts the
newest complete set. Steps, each one `mpremote` invocation: probe (firmware, storage layout, SD
card, the running set), prepare (remove leftovers, make the new folder, copy unchanged files on the
camera), copy the changed files, verify every file by sha256, commit (the manifest set.json, written
last, makes the set complete; then the old set is removed), set the camera's clock (RTC) to the
host's UTC time (unless --no-set-clock), reset the camera so the new set starts. A deploy cut off at
any point leaves the previous set the newest complete one; running it again finishes the job.
Every invocation keeps a running door's watchdog fed (tools.remote.KEEP_FED).
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
    FIRMWARE_DIR,
    FIRMWARE_FORMATS,
    LOADER,
    check_camera_window,
    compiled_firmware,
    door_threshold_line,
    firmware_module,
    firmware_names,
    firmware_payload,
    load_bundle,
    load_site_config,
    parse_overrides,
    render_config,
    sha256_file,
)
from tools.remote import Remote

SETS_DIR = "tmset"  # firmware/tmboot.py SETS_DIR
MANIFEST = "set.json"  # firmware/tmboot.py MANIFEST


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


def local_files(bundle, config: dict, staging: Path, compiled: bool = True) -> list[LocalFile]:
    """Model, labels, config.json, then the firmware modules (.mpy when `compiled`, else .py)."""
    config_path = staging / "config.json"
    config_path.write_text(json.dumps(config, indent=1) + "\n")
    paths = [bundle.model, bundle.labels, config_path, *firmware_payload(staging, compiled)]
    names = [p.name for p in paths]
    if len(set(names)) != len(names):
        raise UserError(f"two files would share a name on the camera: {sorted(names)}")
    return [LocalFile(p.name, p, p.stat().st_size, sha256_file(p)) for p in paths]


def loader_file() -> LocalFile:
    path = FIRMWARE_DIR / LOADER
    return LocalFile("main.py", path, path.stat().st_size, sha256_file(path))


def set_path(root: str, number: int) -> str:
    return board_path(root, f"{SETS_DIR}/{number:06d}")


def on_disk(size: int, block: int) -> int:
    return -(-size // block) * block


def set_manifest(files: list[LocalFile], number: int) -> dict:
    return {"format": 1, "set": number, "deployed": clock_text(utc_now()),
            "files": {f.name: [f.size, f.sha256] for f in files}}


@dataclass
class Plan:
    root: str
    number: int  # the new set: tmset/<number>
    folder: str
    source: str  # where unchanged files are copied from on the camera (the running set, or the root)
    changed: list[LocalFile]
    unchanged: list[LocalFile]
    loader: LocalFile | None  # None: the card's main.py is already this loader
    leftovers: list[str]  # removed before copying: unfinished or older sets, .tmp/.old files
    leftover_bytes: int
    old: list[str]  # removed once the new set is committed: the previous set, files of the layout before sets
    block: int

    def nothing_to_do(self, files: list[LocalFile], manifest: dict | None) -> bool:
        return (not self.changed and self.loader is None and manifest is not None
                and set(manifest["files"]) == {f.name for f in files})


def plan_set(files: list[LocalFile], loader: LocalFile, on_board: dict, root: str) -> Plan:
    """Mark each file new/updated/unchanged against the running set (or, before sets, the files at the
    root), and list what goes before and after the copy."""
    active, manifest = on_board.get("active"), on_board.get("manifest")
    at_root = {name: v for name, v in on_board["files"].items() if v}
    there = manifest["files"] if active and manifest else at_root
    for f in files:
        old = there.get(f.name)
        f.status = "new" if old is None else ("unchanged" if old[1] == f.sha256 else "updated")
    numbers = [int(n) for n in on_board.get("sets", {}) if n.isdigit()]
    if active:
        numbers.append(int(active.rsplit("/", 1)[1]))
    number = max(numbers, default=0) + 1
    vfs = on_board.get("vfs") or [0, 0]
    block = max(int(vfs[2]) if len(vfs) > 2 else 512, 512)  # statvfs f_bsize: the FAT cluster (extmod/vfs_fat.c)
    leftovers = [board_path(root, name) for name in on_board["stale"]]
    leftovers += [board_path(root, f"{SETS_DIR}/{name}") for name in sorted(on_board.get("sets", {}))]
    leftover_bytes = on_board.get("stale_bytes", 0) + sum(on_disk(size, block) for tree in on_board.get("sets", {}).values()
                                                          for size in tree.values())
    root_main = at_root.get("main.py")
    loader_runs = bool(active and root_main and root_main[1] == loader.sha256)
    # files of the layout before sets: the door until the loader takes over, garbage after that
    flat = [board_path(root, name) for name in sorted(at_root) if name != "main.py"]
    if loader_runs:
        leftovers += flat
        leftover_bytes += sum(on_disk(v[0], block) for name, v in at_root.items() if name != "main.py")
    old = ([active] if active else []) + ([] if loader_runs else flat)
    return Plan(root, number, set_path(root, number), active or root,
                [f for f in files if f.status != "unchanged"], [f for f in files if f.status == "unchanged"],
                None if loader_runs else loader, leftovers, leftover_bytes, old, block)


def set_on_disk(sizes: list[int], manifest: dict, block: int) -> int:
    """What one set takes on the camera: its files, its manifest and its folder, in whole blocks."""
    manifest_bytes = len(json.dumps(manifest, sort_keys=True))
    return sum(on_disk(s, block) for s in sizes) + on_disk(manifest_bytes, block) + block


def running_set_bytes(plan: Plan, on_board: dict) -> int:
    """What the running set takes on the camera, 0 before sets."""
    manifest = on_board.get("manifest")
    if not (on_board.get("active") and manifest):
        return 0
    return set_on_disk([int(v[0]) for v in manifest["files"].values()], manifest, plan.block)


def check_space(plan: Plan, files: list[LocalFile], on_board: dict, replace_running: bool = False) -> bool:
    """Refuse, before anything is copied, a set that does not fit beside the running one (which stays
    until the new one is complete). Leftovers of earlier deploys are removed first, so they count as free.
    With `replace_running`, a set that fits only in the running set's place is allowed: returns True,
    and the deploy replaces that set in place."""
    need = (set_on_disk([f.size for f in files], set_manifest(files, plan.number), plan.block)
            + (on_disk(plan.loader.size, plan.block) if plan.loader else 0) + plan.block)  # + the sets' folder
    free = (on_board.get("vfs") or [0, 0])[1] + plan.leftover_bytes
    if need <= free:
        return False
    running = running_set_bytes(plan, on_board)
    in_its_place = running > 0 and need <= free + running
    if in_its_place and replace_running:
        return True
    hint = "insert an SD card" if plan.root == "/flash" else "free some space on the card"
    if in_its_place:
        hint += (", or deploy with --replace-running (it fits in the running set's place; a cut during that "
                 "deploy leaves the door closed, with no door program, until a deploy finishes)")
    counted = f" (counting {plan.leftover_bytes} bytes of leftovers that would be removed)" if plan.leftover_bytes else ""
    raise UserError(f"not enough space on the camera's {plan.root} for the new set: {need} bytes needed "
                    f"({len(files)} files, in {plan.block}-byte blocks, beside the running set), {free} free"
                    f"{counted}; nothing was copied and the running door is unchanged: {hint}")


def copy_commands(files: list[LocalFile], folder: str, loader: LocalFile | None, root: str) -> list[list[str]]:
    commands = [["fs", "cp", "-f", str(f.path), ":" + board_path(folder, f.name)] for f in files]
    if loader is not None:
        commands.append(["fs", "cp", "-f", str(loader.path), ":" + board_path(root, "main.py") + ".tmp"])
    return commands


def probe_names(bundle) -> list[str]:
    """Files looked for at the storage root (the layout before sets), firmware as source and compiled."""
    return [bundle.model.name, bundle.labels.name, "config.json", *firmware_names()]


def describe_firmware(files: list[LocalFile]) -> str:
    modules = [f for f in files if f.name.endswith((".mpy", ".py"))]
    compiled = all(f.name.endswith(".mpy") for f in modules)
    kind = "compiled by mpy-cross to .mpy" if compiled else "as .py sources"
    return f"firmware: {len(modules)} modules {kind}, {sum(f.size for f in modules)} bytes"


def report(files: list[LocalFile], root: str) -> None:
    width = max(len(f.name) for f in files)
    print(f"{'file':<{width}}  {'bytes':>8}  sha256        status   (on the camera in {root})")
    for f in files:
        print(f"{f.name:<{width}}  {f.size:>8}  {f.sha256[:12]}  {f.status}")
    counts = {s: sum(f.status == s for f in files) for s in ("new", "updated", "unchanged")}
    print(f"{counts['new']} new, {counts['updated']} updated, {counts['unchanged']} unchanged")


def verify(remote: Remote, files: list[LocalFile], folder: str, loader_tmp: tuple[str, LocalFile] | None = None,
           running: str = "is unchanged") -> None:
    """Every file of the new set (and the loader's .tmp copy) by size and sha256, before the commit."""
    where = {board_path(folder, f.name): f for f in files}
    if loader_tmp is not None:
        where[loader_tmp[0]] = loader_tmp[1]
    found = remote.run_snippet("verify", snippets.hashes(list(where)))
    bad = []
    for path, f in where.items():
        there = found.get(path)
        if there is None:
            bad.append(f"{f.name} is missing")
        elif there[1] != f.sha256 or there[0] != f.size:
            bad.append(f"{f.name} has sha256 {there[1][:12]} ({there[0]} bytes), expected {f.sha256[:12]} ({f.size} bytes)")
    if bad:
        raise UserError(f"verification FAILED on the camera ({folder}): " + "; ".join(bad)
                        + f". The running set {running}. The storage may be failing: deploy again, and replace "
                          "the SD card if it repeats")
    print(f"verified {len(where)} files on the camera by sha256")


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


def dry_run(remote: Remote, bundle, files: list[LocalFile], args, board: BoardProfile) -> int:
    root = assumed_root(args.target, board)
    folder = set_path(root, 1)
    loader = loader_file()
    print(f"# dry run: nothing is sent. config.json is staged at {files[2].path}")
    print(f"# storage root assumed {root}, a card without sets (the real run probes the camera, numbers the "
          f"set after the running one and copies unchanged files on the camera)")
    print(f"# {describe_firmware(files)} (the real run checks that the camera's MicroPython imports them)")
    if args.replace_running:
        print("# --replace-running: the real run replaces the running set in place only if the new set does not "
              "fit beside it")
    remote.run("probe", ["exec", snippets.probe(probe_names(bundle))])
    remote.run("prepare", ["exec", snippets.prepare([], [board_path(root, SETS_DIR), folder], [])])
    remote.run("copy", *copy_commands(files, folder, loader, root))
    remote.run("verify", ["exec", snippets.hashes([board_path(folder, f.name) for f in files]
                                                  + [board_path(root, "main.py.tmp")])])
    remote.run("commit", ["exec", snippets.commit(folder, set_manifest(files, 1),
                                                  [(board_path(root, "main.py.tmp"), board_path(root, "main.py"))], [])])
    if not args.no_set_clock:
        when = utc_now()
        print(f"# set the camera's clock to the host's UTC time (a real run sends the time it runs at; here {clock_text(when)})")
        remote.run("clock", ["exec", snippets.set_clock(when)])
    if not args.no_reset:
        remote.run("reset", ["exec", "--no-follow", snippets.reset()])
    return 0


def deploy(remote: Remote, bundle, config: dict, staging: Path, args, board: BoardProfile) -> None:
    info = remote.run_snippet("probe", snippets.probe(probe_names(bundle)))
    root, has_sd = choose_root(info, args.target, board, config)
    print(f"camera on {remote.device}: OpenMV firmware {info['firmware'] or 'unknown'}, "
          f"board id {info['board_id'] or 'unknown'}, SD card {'yes' if has_sd else 'no'}; deploying to {root}")
    compiled, note = compiled_firmware(args.firmware_format, info.get("mpy"))
    if note:
        print(f"note: {note}")
    files = local_files(bundle, config, staging, compiled)
    print(describe_firmware(files))
    on_board = info["roots"][root]
    plan = plan_set(files, loader_file(), on_board, root)
    if plan.leftovers:
        print(f"removing {len(plan.leftovers)} leftover(s) of an interrupted or earlier deploy: {', '.join(plan.leftovers)}")
    if plan.nothing_to_do(files, on_board.get("manifest")):
        if plan.leftovers:
            remote.run_snippet("clean", snippets.prepare(plan.leftovers, [], []))
        report(files, on_board["active"])
        print("the camera already holds this exact bundle; nothing to copy")
        return
    in_place = check_space(plan, files, on_board, args.replace_running)
    sent = plan.changed + ([plan.loader] if plan.loader else [])
    print(f"copying {len(sent)} file(s), {sum(f.size for f in sent)} bytes, to {plan.folder}: "
          f"{', '.join(f.name for f in sent)}")
    on_camera = [(board_path(plan.source, f.name), board_path(plan.folder, f.name)) for f in plan.unchanged]
    if in_place:
        print(f"replacing the running set {plan.source} in place (--replace-running): until this deploy "
              f"commits, the camera has no complete set and its door stays closed")
    if plan.unchanged:
        print(f"{len(plan.unchanged)} unchanged file(s) {'moved' if in_place else 'copied'} on the camera "
              f"from {plan.source}")
    copies, retire, moves = ([], plan.source, on_camera) if in_place else (on_camera, None, [])
    try:
        remote.run_snippet("prepare", snippets.prepare(plan.leftovers, [board_path(root, SETS_DIR), plan.folder],
                                                       copies, retire, moves))
        remote.run("copy", *copy_commands(plan.changed, plan.folder, plan.loader, root))
    except UserError as exc:
        if "EROFS" in str(exc):  # MicroPython's FAT on a locked card (FatFs FR_WRITE_PROTECTED)
            raise UserError(f"the camera's {root} is read-only (is the SD card's lock switch on?): nothing was "
                            f"changed and the running door is unchanged; unlock the card and deploy again") from None
        where = ("the camera starts the running set if this came before its manifest was removed, else no set "
                 "(no door program, the door stays closed)") if in_place else "the running set is untouched"
        raise UserError(f"{exc}; {where}: deploy again to finish") from None
    verify(remote, files, plan.folder, (board_path(root, "main.py.tmp"), plan.loader) if plan.loader else None,
           running="was taken apart (--replace-running): the camera starts no set and the door stays closed"
           if in_place else "is unchanged")
    pairs = [(board_path(root, "main.py.tmp"), board_path(root, "main.py"))] if plan.loader else []
    print(f"committing set {plan.number}: its manifest makes it the one the camera starts")
    try:
        remote.run_snippet("commit", snippets.commit(plan.folder, set_manifest(files, plan.number), pairs, plan.old))
    except UserError as exc:
        previous = "no set (the door stays closed)" if in_place else "the previous one"
        raise UserError(f"{exc}; the camera starts the new set if its manifest arrived, else {previous}: "
                        f"deploy again to finish") from None
    report(files, plan.folder)


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
    parser.add_argument("--firmware-format", choices=FIRMWARE_FORMATS, default="auto",
                        help="the firmware modules as mpy-cross bytecode (mpy: 22 KB) or as sources (py: 62 KB); "
                             "auto (default): .mpy when the camera's MicroPython imports them (firmware 4.4.0 on)")
    parser.add_argument("--replace-running", action="store_true",
                        help="when the new set fits only in the running set's place (a card-less H7's 128 KB "
                             "/flash holds one set), replace it in place: a cut during the deploy then leaves the "
                             "door closed, with no door program, until a deploy finishes")
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
    check_camera_window(board, config["camera_window"])
    threshold_line = door_threshold_line(bundle.card, config, overrides)
    staging = Path(tempfile.mkdtemp(prefix="tinymask-deploy-"))
    remote = Remote(args.port, verbose=args.verbose, dry_run=args.dry_run)
    if args.dry_run:
        files = local_files(bundle, config, staging, compiled=args.firmware_format != "py")
        print(f"# {threshold_line}")
        return dry_run(remote, bundle, files, args, board)
    print(threshold_line)
    remote.check_port()
    try:
        deploy(remote, bundle, config, staging, args, board)
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
