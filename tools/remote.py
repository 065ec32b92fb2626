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
import stat
import subprocess
import sys
from dataclasses import dataclass, field

from host.errors import UserError

IDE_MAGIC_BAUDS = ("921600", "12000000")
RESULT_MARK = "@@tinymask@@"  # snippets print their one result line after this mark
RESET = "import time, machine\ntime.sleep_ms(100)\nmachine.reset()"  # what `mpremote reset` runs

# A door's machine.WDT keeps running through Ctrl-C, the raw REPL and soft resets (docs/openmv-platform.md
# item 11), and a deploy or pull talks to the board for longer than its timeout. So every mpremote
# invocation starts by re-arming the watchdog for WATCHDOG_MS and feeding it on every binary file read
# and write, which covers mpremote's own `fs cp` chunks (mpremote/transport.py fs_writefile and
# fs_readfile run `f=open(...)` in the board's __main__ globals, where this `open` shadows the builtin).
# machine.WDT(timeout=...) returns the one watchdog and reprograms its timeout (stm32: reload and
# prescaler rewritten, default 5000 ms; mimxrt: WDOG_Init again; openmv/micropython 827c2b859, the
# src/micropython of openmv v4.6.0: ports/stm32/machine_wdt.c, ports/mimxrt/machine_wdt.c,
# extmod/machine_wdt.c). 30 s is under the stm32 maximum of 32767 ms and a multiple of mimxrt's 500 ms
# step. If the host goes away mid-deploy nothing feeds it, and the board resets into its door within 30 s.
WATCHDOG_MS = 30000
KEEP_FED = f"""\
try:
 import machine
 _tmW = machine.WDT(timeout={WATCHDOG_MS})
 _tmW.feed()
except Exception:
 _tmW = None
if _tmW:
 _tmO = open
 class _tmF:
  def __init__(s, f):
   s.f = f
  def read(s, *a):
   _tmW.feed()
   return s.f.read(*a)
  def readinto(s, *a):
   _tmW.feed()
   return s.f.readinto(*a)
  def write(s, b):
   _tmW.feed()
   return s.f.write(b)
  def seek(s, *a):
   return s.f.seek(*a)
  def tell(s):
   return s.f.tell()
  def flush(s):
   return s.f.flush()
  def close(s):
   return s.f.close()
  def __enter__(s):
   return s
  def __exit__(s, *a):
   s.f.close()
 def open(p, m='r'):
  f = _tmO(p, m)
  return _tmF(f) if 'b' in m else f
"""


@dataclass
class Remote:
    port: str | None  # None: mpremote's "auto" (the first USB serial port)
    verbose: bool = False
    dry_run: bool = False
    printed: list[str] = field(default_factory=list)  # command lines shown by a dry run
    connected: bool = False  # an invocation has reached the camera's REPL at least once
    keep_fed: bool = True  # start every invocation with KEEP_FED (a running door's watchdog)

    @property
    def device(self) -> str:
        return self.port or "auto"

    def argv(self, *commands: list[str]) -> list[str]:
        """`mpremote connect PORT cmd1 + cmd2 ...` as an argv (mpremote run through this Python)."""
        args = ["connect", self.device]
        if self.keep_fed:
            commands = (["exec", KEEP_FED], *commands)
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
            if self.port and "://" not in self.port and not stat.S_ISCHR(os.stat(self.port).st_mode):
                return (f"{where} is not a serial port (a {'folder' if os.path.isdir(self.port) else 'file'}): pass the"
                        " camera's port, e.g. --port /dev/ttyACM0 (list them with `mpremote devs`)")
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
