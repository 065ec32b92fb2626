"""Bring the camera's SD logs and captured frames home, into an archive with one folder per device.

    python -m tools.pull [--port PORT | --from MOUNTED_SD_DIR] --to ARCHIVE [--device ID]

The archive mirrors the card: `ARCHIVE/<device_id>/logs/...`, `ARCHIVE/<device_id>/captures/...`,
the camera's `config.json` (the report reads its door threshold and label order), plus
`pull-state.json` (size and sha256 of every file pulled). Only the card's own files are copied: a
`log_dir`/`capture_dir` in its config.json that is absolute, holds `..` or is not a string is ignored
with a warning (the default folder is pulled), and a link that leads off the card is not followed. Pulling is incremental and resumable:
unchanged files are skipped, a log that grew is replaced by its longer self (its old bytes must be
a prefix of the new ones), a file that shrank or changed is kept beside as `<name>.conflict-<n>`.
A card whose first boot number is archived under its device id with another boot id (a wiped or
replaced card, or another camera of that name) goes to `ARCHIVE/<device_id>~card<n>`, so no run loses
its logs or captures.
Files arrive in a staging folder and are renamed into place, and the state is saved after every
batch, so an interrupted pull loses nothing and the next one carries on.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import shutil
import sys
from pathlib import Path

from tqdm import tqdm

from host.errors import UserError, output_folder, run_cli
from host.field.logread import parse_log
from tools import snippets
from tools.payload import firmware_module, sha256_file
from tools.remote import Remote

STATE_FILE = "pull-state.json"
STAGING = ".incoming"
DEFAULT_DIRS = ("logs", "captures")
CONFIG_FILE = "config.json"  # the camera's config, archived beside its logs (the report reads its threshold)


def safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text).strip(".") or "unknown"


def check_relative(rel: str) -> str:
    """A file name the camera listed, as a path under the archive: relative, no '..', and none of the
    characters a host path cannot hold or would read as a separator ('\\', ':' on Windows, NUL)."""
    if (not isinstance(rel, str) or rel.startswith("/") or any(p in ("", ".", "..") for p in rel.split("/"))
            or any(ch in rel for ch in "\\:") or not all(32 <= ord(ch) for ch in rel)):
        raise UserError(f"refusing odd file name from the camera: {rel!r}")
    return rel


def inside(path: Path, root: Path) -> bool:
    """True when `path` (symbolic links followed) lies inside the folder `root` (already resolved)."""
    try:
        path.resolve().relative_to(root)
        return True
    except (ValueError, OSError):
        return False


def plain_dir(value) -> bool:
    """A folder name from the card's config.json that stays on the card: relative, no '..', no '\\'."""
    return (isinstance(value, str) and bool(value.strip("/")) and not value.startswith("/") and "\\" not in value
            and ":" not in value and all(p not in ("", ".", "..") for p in value.split("/"))
            and all(32 <= ord(ch) < 127 for ch in value))


def card_dirs(config: Path) -> list[str]:
    """The log and capture folders named by the card's config.json, confined to the card: a value of
    the wrong type, an absolute path or one with '..' is ignored with one warning line (the firmware's
    default folder is used instead). The firmware's own rules give the types (firmware/tmconfig.py)."""
    dirs = list(DEFAULT_DIRS)
    if not config.is_file():
        return dirs
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
    except (ValueError, OSError) as exc:
        print(f"warning: {config}: unreadable ({str(exc).splitlines()[0][:80]}); looking in {dirs[0]}/ and "
              f"{dirs[1]}/", file=sys.stderr)
        return dirs
    if not isinstance(data, dict):
        print(f"warning: {config}: not a JSON object; looking in {dirs[0]}/ and {dirs[1]}/", file=sys.stderr)
        return dirs
    for i, key in enumerate(("log_dir", "capture_dir")):
        if key not in data:
            continue
        value = data[key]
        if plain_dir(value):
            dirs[i] = value.strip("/")
        else:
            print(f"warning: {config}: {key} {value!r} is not a folder on the card (it must be a relative name "
                  f"like {DEFAULT_DIRS[i]!r}, without '..'); ignored, pulling {DEFAULT_DIRS[i]}/ instead",
                  file=sys.stderr)
    return dirs


def device_from_header(data: bytes) -> str | None:
    """device_id of the first valid log header in `data` (docs/log-format.md)."""
    headers = parse_log(data, "header").headers
    return headers[0].device_id if headers else None


def card_config(folder: Path) -> Path:
    """The running config.json of a card: the active set's (firmware/tmboot.py choose, the rule the
    camera boots by), else the one at the root (the layout before sets)."""
    active = firmware_module("tmboot").choose(str(folder))
    return Path(active) / CONFIG_FILE if active else Path(folder) / CONFIG_FILE


class FolderSource:
    """A mounted SD card (or any copy of one): the storage root with logs/ and captures/."""

    batch_size = 64

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise UserError(f"--from {folder}: no such folder; point it at the mounted SD card")

    def describe(self) -> str:
        return str(self.folder)

    def scan(self) -> tuple[dict, bytes, str]:
        root = self.folder.resolve()
        config = card_config(self.folder)
        if config.exists() and (config.is_symlink() or not inside(config, root)):  # a linked set folder too
            print(f"warning: {config}: leads outside the card ({config.resolve()}); not read, pulling "
                  f"{DEFAULT_DIRS[0]}/ and {DEFAULT_DIRS[1]}/", file=sys.stderr)
            config = self.folder / CONFIG_FILE / "not-on-the-card"  # reads as no config
        self.config = config
        dirs = card_dirs(config)
        files = {}
        if config.is_file():
            files[CONFIG_FILE] = config.stat().st_size
        for top in dirs:
            base = self.folder / top
            if base.is_dir() and not inside(base, root):
                print(f"warning: {base}: leads outside the card ({base.resolve()}); not copied", file=sys.stderr)
                continue
            for path in sorted(base.rglob("*")) if base.is_dir() else []:
                if not path.is_file():
                    continue
                if not inside(path, root):  # a symbolic link on the card that leads off it
                    print(f"warning: {path}: leads outside the card ({path.resolve()}); not copied", file=sys.stderr)
                    continue
                files[path.relative_to(self.folder).as_posix()] = path.stat().st_size
        logs = sorted(r for r in files if r.startswith(dirs[0] + "/") and r.endswith(".log"))
        header = (self.folder / logs[0]).read_bytes()[:300] if logs else b""
        return files, header, ""

    def fetch(self, rels: list[str], staging: Path) -> None:
        for rel in rels:
            target = staging / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(self.config if rel == CONFIG_FILE else self.folder / rel, target)


class DeviceSource:
    """The camera itself, through mpremote: a snippet lists the files, `mpremote cp` fetches them."""

    batch_size = 32

    def __init__(self, remote: Remote):
        self.remote = remote
        self.root = None
        self.config = None

    def describe(self) -> str:
        return f"camera on {self.remote.device}"

    def scan(self) -> tuple[dict, bytes, str]:
        info = self.remote.run_snippet("listing", snippets.listing())
        if not info["root"]:
            raise UserError(f"the camera on {self.remote.device} shows no storage to pull from")
        self.root = info["root"].rstrip("/")
        files = {check_relative(rel): size for rel, size in info["files"]}
        self.config = info.get("config")  # the active set's config.json (board path), else the root's
        if self.config and isinstance(info.get("config_size"), int):
            files[CONFIG_FILE] = info["config_size"]
        return files, bytes.fromhex(info["header"]), info["board_id"]

    def fetch(self, rels: list[str], staging: Path) -> None:
        commands = []
        for rel in rels:
            target = staging / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            source = self.config if rel == CONFIG_FILE else f"{self.root}/{rel}"
            commands.append(["fs", "cp", f":{source}", str(target)])
        self.remote.run(f"copy of {len(rels)} file(s)", *commands)


def load_state(folder: Path, device_id: str) -> dict:
    path = folder / STATE_FILE
    if path.is_file():
        try:
            state = json.loads(path.read_text())
        except (ValueError, OSError):
            state = None
        if isinstance(state, dict) and isinstance(state.get("files"), dict):
            files = state["files"]
            state["files"] = {rel: v for rel, v in files.items() if isinstance(v, dict) and isinstance(v.get("size"), int)
                              and not isinstance(v.get("size"), bool) and isinstance(v.get("sha256"), str)}
            if not isinstance(state.get("pulls"), list):
                state["pulls"] = []
            if len(state["files"]) == len(files):
                return state
        print(f"warning: {path} is unreadable; rebuilding it from the files in the archive", file=sys.stderr)
    return {"format": 1, "device_id": device_id, "files": {}, "pulls": []}


def save_state(folder: Path, state: dict) -> None:
    path = folder / STATE_FILE
    tmp = path.with_name(STATE_FILE + ".tmp")
    tmp.write_text(json.dumps(state, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, path)


def is_current(folder: Path, state: dict, rel: str, size: int) -> bool:
    known = state["files"].get(rel)
    local = folder / rel
    return bool(known) and known["size"] == size and local.is_file() and local.stat().st_size == size


def conflict_name(path: Path) -> Path:
    """<name>.conflict-<n>: kept, and never read as live data (host.ingest reads *.log only)."""
    n = 1
    while path.with_name(f"{path.name}.conflict-{n}").exists():
        n += 1
    return path.with_name(f"{path.name}.conflict-{n}")


def first_run(header: bytes) -> tuple[int, str] | None:
    """(boot, boot id) of a card's first log. None for logs without boot ids (format 1)."""
    headers = parse_log(header, "header").headers
    if not headers or not headers[0].boot_id or headers[0].boot_id == "-":
        return None
    return headers[0].boot, headers[0].boot_id


def folder_runs(folder: Path) -> dict[int, str]:
    """{boot: boot id} of the logs archived in a device folder (their headers)."""
    runs = {}
    logs = folder / card_dirs(folder / CONFIG_FILE)[0] if folder.is_dir() else None
    for log in sorted(logs.glob("*.log")) if logs is not None and logs.is_dir() else []:
        run = first_run(log.read_bytes()[:300])
        if run is not None:
            runs[run[0]] = run[1]
    return runs


def device_folder(archive: Path, device_id: str, run: tuple[int, str] | None) -> Path:
    """ARCHIVE/<device_id>, or ARCHIVE/<device_id>~card<n> when that folder already holds the card's first
    boot number under another boot id (the card was wiped or replaced, or another camera has this
    device_id): each card's runs keep their own logs and captures, since boot numbers and capture names
    repeat across cards. Old logs deleted from the card change nothing (their boot numbers are gone)."""
    base, n = safe_name(device_id), 1
    while True:
        folder = Path(archive) / (base if n == 1 else f"{base}~card{n}")
        if run is None or folder_runs(folder).get(run[0], run[1]) == run[1]:
            return folder
        n += 1


def install(folder: Path, staged: Path, rel: str, state: dict) -> str:
    """Move one fetched file into the archive; returns new, updated, unchanged or conflict."""
    local = folder / check_relative(rel)
    if not inside(local, folder.resolve()):
        raise UserError(f"{local}: leads outside the archive folder {folder}; remove that link and pull again")
    size = staged.stat().st_size
    status = "new"
    if local.is_file():
        old_size = local.stat().st_size
        old_sha = sha256_file(local)
        if size >= old_size and sha256_file(staged, old_size) == old_sha:
            status = "unchanged" if size == old_size else "updated"
        else:
            keep = conflict_name(local)
            os.replace(local, keep)
            print(f"warning: {rel} changed on the card (not an append): the old copy is kept as {keep.name}",
                  file=sys.stderr)
            status = "conflict"
    local.parent.mkdir(parents=True, exist_ok=True)
    if status == "unchanged":
        staged.unlink()
    else:
        os.replace(staged, local)
    state["files"][rel] = {"size": size, "sha256": sha256_file(local)}
    return status


def pull(source, archive: Path, device: str | None) -> dict:
    files, header, board_id = source.scan()
    device_id = device or device_from_header(header) or board_id
    if not device_id:
        raise UserError(f"{source.describe()}: cannot tell which camera this is (no log header found); pass --device NAME")
    folder = device_folder(archive, device_id, first_run(header))
    if folder.name != safe_name(device_id):
        print(f"warning: this card's runs are not those archived in {folder.parent / safe_name(device_id)} (a wiped "
              f"or replaced card, or another camera named {device_id}): archived in {folder}", file=sys.stderr)
    output_folder(folder, "--to").mkdir(parents=True, exist_ok=True)
    state = load_state(folder, device_id)
    staging = folder / STAGING
    shutil.rmtree(staging, ignore_errors=True)
    counts = {"new": 0, "updated": 0, "unchanged": 0, "conflict": 0}
    wanted = []
    for rel, size in sorted(files.items()):
        if is_current(folder, state, rel, size):
            counts["unchanged"] += 1
        else:
            wanted.append(rel)
    print(f"{source.describe()}: device {device_id}, {len(files)} files, {len(wanted)} to fetch -> {folder}")
    with tqdm(total=len(wanted), unit="file", desc="pull", disable=None) as bar:
        for start in range(0, len(wanted), source.batch_size):
            batch = wanted[start:start + source.batch_size]
            try:
                source.fetch(batch, staging)
            except UserError as exc:
                save_state(folder, state)
                shutil.rmtree(staging, ignore_errors=True)
                raise UserError(f"{exc}; {start} of {len(wanted)} files were saved, run the pull again to resume") from None
            for rel in batch:
                counts[install(folder, staging / rel, rel, state)] += 1
            save_state(folder, state)
            bar.update(len(batch))
    shutil.rmtree(staging, ignore_errors=True)
    state["pulls"].append({"at": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
                           "source": source.describe(), **counts})
    save_state(folder, state)
    print(f"{counts['new']} new, {counts['updated']} updated, {counts['unchanged']} unchanged"
          + (f", {counts['conflict']} conflict(s)" if counts["conflict"] else ""))
    return counts


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m tools.pull", description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--port", help="serial port of the camera (default: the first USB serial port)")
    source.add_argument("--from", dest="folder", type=Path, help="a mounted SD card folder instead of the camera")
    parser.add_argument("--to", dest="archive", type=Path, required=True, help="archive folder (created if needed)")
    parser.add_argument("--device", help="device id to file the data under (default: from the log headers)")
    parser.add_argument("--no-reset", action="store_true", help="leave the camera at the REPL afterwards")
    parser.add_argument("--verbose", action="store_true", help="show every mpremote command and its output")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.folder is not None:
        pull(FolderSource(args.folder), args.archive, args.device)
        return 0
    remote = Remote(args.port, verbose=args.verbose)
    remote.check_port()
    try:
        pull(DeviceSource(remote), args.archive, args.device)
    finally:
        if not args.no_reset:
            remote.reset_quietly()  # entering the REPL stopped the door program: start it again
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
