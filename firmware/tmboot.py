# The set loader: tools.deploy installs this file as the card's main.py (OpenMV runs main.py once
# after a cold boot). It starts the newest complete set in tmset/<n>/: model, labels, config.json
# and every firmware module of one deploy, with that set's own main.py (the door).
# A set is complete once its manifest set.json is there and every file it lists has its size:
# deploy writes the manifest last, after checking each file's sha256. So a deploy cut off at any
# step leaves the previous set the newest complete one, and the door starts as it was.
# tools.snippets runs this same choose() on the camera to find the active set (deploy, pull).

import os
import sys

try:
    import json
except ImportError:
    import ujson as json

SETS_DIR = "tmset"
MANIFEST = "set.json"


def join(a, b):
    if a.endswith("/"):
        return a + b
    return a + "/" + b


def set_number(name):
    """tmset/000012 -> 12; anything else (a leftover, a temporary name) -> -1."""
    if not name or len(name) > 9:
        return -1
    for ch in name:
        if ch < "0" or ch > "9":
            return -1
    return int(name)


def manifest(folder):
    """The set's manifest {'files': {name: [size, sha256]}, ...}, or None when it is not there or not whole."""
    try:
        with open(join(folder, MANIFEST)) as f:
            m = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(m, dict) or not isinstance(m.get("files"), dict) or not m["files"]:
        return None
    return m


def complete(folder):
    m = manifest(folder)
    if m is None:
        return False
    for name in m["files"]:
        try:
            if os.stat(join(folder, name))[6] != m["files"][name][0]:
                return False
        except (OSError, TypeError, IndexError):
            return False
    return True


def choose(root):
    """The folder of the newest complete set under root, or None."""
    base = join(root, SETS_DIR)
    try:
        names = os.listdir(base)
    except OSError:
        return None
    best = None
    best_n = -1
    for name in names:
        n = set_number(name)
        if n > best_n and complete(join(base, name)):
            best = join(base, name)
            best_n = n
    return best


def run():
    root = os.getcwd()
    folder = choose(root)
    if folder is None:
        print("tinymask: no complete set in " + join(root, SETS_DIR) + ": deploy with tools.deploy")
        return
    os.chdir(folder)  # the door's relative paths (config.json, the model) are the set's
    sys.path.insert(0, folder)
    import main  # noqa: F401 -- the set's door program; it runs until the board resets


if __name__ == "__main__":
    run()
