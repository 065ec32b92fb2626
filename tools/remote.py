"""Run the real `mpremote` CLI against the camera and turn its failures into one clear line.

Every talk with the board goes through `mpremote connect PORT ...` as a subprocess: the same
commands a user could type, printed verbatim by `--dry-run`. No baud rate is ever passed: mpremote
opens the port at its default, and the OpenMV IDE's magic rates (921600 and 12000000, which switch
the camera's USB port from the REPL to the IDE debug protocol) are refused outright.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass, field

from host.errors import UserError

IDE_MAGIC_BAUDS = ("921600", "12000000")
RESULT_MARK = "@@tinymask@@"  # snippets print their one result line after this mark
RESET = "import time, machine\ntime.sleep_ms(100)\nmachine.reset()"  # what `mpremote reset` runs


@dataclass
class Remote:
    port: str | None  # None: mpremote's "auto" (the first USB serial port)
    verbose: bool = False
    dry_run: bool = False
    printed: list[str] = field(default_factory=list)  # command lines shown by a dry run
    connected: bool = False  # an invocation has reached the camera's REPL at least once

    @property
    def device(self) -> str:
        return self.port or "auto"

    def argv(self, *commands: list[str]) -> list[str]:
        """`mpremote connect PORT cmd1 + cmd2 ...` as an argv (mpremote run through this Python)."""
        args = ["connect", self.device]
        for i, command in enumerate(commands):
            if i:
                args.append("+")
            args.extend(command)
        for arg in args:
            if arg in IDE_MAGIC_BAUDS:
                raise UserError(f"refusing baud rate {arg}: it switches an OpenMV camera to the IDE protocol")
        return [sys.executable, "-m", "mpremote", *args]

    @staticmethod
    def shown(argv: list[str]) -> str:
        """The command line as a user would type it."""
        return shlex.join(["mpremote", *argv[3:]])

    def check_port(self) -> None:
        """Fail early, in one line, when the named port does not exist."""
        if self.port and "://" not in self.port and not os.path.exists(self.port):
            raise UserError(f"no device at {self.port}: is the camera plugged in? (list serial ports with `mpremote devs`)")

    def run(self, step: str, *commands: list[str]) -> str:
        """Run one mpremote invocation; returns its stdout. A dry run only prints the command line."""
        argv = self.argv(*commands)
        if self.dry_run:
            line = self.shown(argv)
            self.printed.append(line)
            print(line)
            return ""
        self.check_port()
        if self.verbose:
            print(f"[{step}] {self.shown(argv)}", file=sys.stderr)
        proc = subprocess.run(argv, check=False, capture_output=True, text=True, errors="replace", stdin=subprocess.DEVNULL)
        if self.verbose and (proc.stdout or proc.stderr):
            print(proc.stdout + proc.stderr, file=sys.stderr)
        if proc.returncode != 0:
            raise UserError(self.explain(step, proc.stdout + proc.stderr))
        self.connected = True
        return proc.stdout

    def reset_quietly(self) -> bool:
        """Restart the camera's program (entering the raw REPL stopped it) if we ever reached it;
        a camera that has gone away is not an error here."""
        if not self.connected or self.dry_run:
            return False
        try:
            self.run("reset", ["exec", "--no-follow", RESET])
        except UserError:
            return False
        return True

    def run_snippet(self, step: str, source: str):
        """Execute a MicroPython snippet that prints RESULT_MARK + JSON; returns the decoded JSON."""
        out = self.run(step, ["exec", source])
        if self.dry_run:
            return None
        for line in out.splitlines():
            if line.startswith(RESULT_MARK):
                return json.loads(line[len(RESULT_MARK):])
        raise UserError(f"{step}: the camera on {self.device} gave no answer (output: {out.strip()[-200:]!r})")

    def explain(self, step: str, output: str) -> str:
        text = output.strip()
        last = text.splitlines()[-1] if text else "no output"
        where = self.device
        if "failed to access" in text:
            if self.port and "://" not in self.port and not os.path.exists(self.port):
                return f"no device at {where}: is the camera plugged in? (list serial ports with `mpremote devs`)"
            return (f"port busy: {where} is open in another program (OpenMV IDE, a serial terminal, "
                    f"another mpremote); close it and retry")
        if "no device found" in text:
            return "no camera found on any USB serial port: plug it in, or name the port with --port"
        if "could not enter raw repl" in text:
            return (f"the device on {where} does not answer like a MicroPython REPL during {step} "
                    f"(is it an OpenMV camera? is the OpenMV IDE connected?)")
        if "Traceback (most recent call last)" in text and "File \"<stdin>\"" in text:
            return f"{step}: the camera reported {last}"
        return f"lost the connection to the camera on {where} during {step} ({last})"
