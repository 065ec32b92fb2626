# The presence gate: is there anything in the window that could be a face? Cheap frame statistics
# only (img.get_statistics, imlib's L*a*b* histograms), run before the door may count a frame:
#   dark   every block's mean lightness <= presence_dark_l      (lens covered, lights off)
#   flat   every block's lightness stdev <= presence_flat_l     (paper, a blank wall, a gradient)
#   plain  block means differ by <= presence_plain_l            (noise, a uniform texture)
# A gated frame is logged as `none` and never counts toward opening the door.
#   still  no block changed by more than presence_change_l for presence_still_ms (a scene that
#          stands still: a coat on a hook, a poster). Not "nobody": the frame keeps the model's
#          label in the log, but it cannot open the door or hold it open (Gate.still).
# The blocks are a
# presence_grid x presence_grid layout of presence_block-pixel squares centred in the window's
# cells, so the cost is a fixed number of pixels whatever the window. Integer arithmetic only: the
# host (host/gate.py) runs this very code and must get the same answer. docs/presence.md.

from door import ticks_diff

DARK = "dark"
FLAT = "flat"
PLAIN = "plain"


def block_rois(width, height, grid, block):
    """(x, y, w, h) of grid x grid square blocks, one centred in each cell of the window."""
    side = min(block, width // grid, height // grid)
    rois = []
    for j in range(grid):
        for i in range(grid):
            cx = (2 * i + 1) * width // (2 * grid)
            cy = (2 * j + 1) * height // (2 * grid)
            rois.append((cx - side // 2, cy - side // 2, side, side))
    return tuple(rois)


class Gate:
    def __init__(self, cfg):
        self.enabled = cfg["presence_gate"]
        self.grid = cfg["presence_grid"]
        self.block = cfg["presence_block"]
        self.dark_l = cfg["presence_dark_l"]
        self.flat_l = cfg["presence_flat_l"]
        self.plain_l = cfg["presence_plain_l"]
        self.still_ms = cfg["presence_still_ms"]
        self.change_l = cfg["presence_change_l"]
        self.size = None  # (width, height) of the window the blocks were placed for
        self.rois = ()
        self.means = []  # this frame's block means, kept for still()
        self.reference = []  # the block means when the window last changed
        self.changed_at = None  # ticks_ms of that change; None until a first frame was measured
        self.quiet = False  # still_ms passed since that change (latched: ticks_ms wraps in 12 days)

    def check(self, img):
        """None when the frame may hold a face, else DARK, FLAT or PLAIN."""
        if not self.enabled:
            return None
        width = img.width()
        height = img.height()
        size = self.size
        if size is None or size[0] != width or size[1] != height:  # once per window size, no tuple per frame
            self.rois = block_rois(width, height, self.grid, self.block)
            self.size = (width, height)
            self.means = [0] * len(self.rois)
            self.reference = [0] * len(self.rois)
            self.changed_at = None
            self.quiet = False
        low = 101
        high = -1
        spread = -1
        means = self.means
        for k in range(len(self.rois)):
            stats = img.get_statistics(roi=self.rois[k])
            mean = stats.l_mean()
            stdev = stats.l_stdev()
            means[k] = mean
            if mean < low:
                low = mean
            if mean > high:
                high = mean
            if stdev > spread:
                spread = stdev
        if high <= self.dark_l:
            return DARK
        if spread <= self.flat_l:
            return FLAT
        if high - low <= self.plain_l:
            return PLAIN
        return None

    def still(self, now):
        """After check() on the same frame: True when no block's mean has moved by more than
        change_l since the last change and that change is still_ms old or more. A person arriving
        or moving changes blocks; a scene the model mistakes for a masked face does not, so it can
        open the door at most once per change (at boot, when something moves) instead of holding
        it open for good. A change is a block moving against the others: the mean shift of all
        blocks (auto exposure, mains flicker, an even change of light) is taken out first. Once
        quiet, it stays quiet until a change, however long the scene stands (ticks_ms wraps).
        Integers only, as check()."""
        if not self.enabled or self.still_ms <= 0 or self.size is None:
            return False
        means = self.means
        reference = self.reference
        count = len(means)
        shift = 0
        for k in range(count):
            shift += means[k] - reference[k]
        limit = self.change_l * count
        moved = self.changed_at is None
        for k in range(count):
            d = (means[k] - reference[k]) * count - shift
            if d > limit or d < -limit:
                moved = True
        if moved:
            for k in range(count):
                reference[k] = means[k]
            self.changed_at = now
            self.quiet = False
            return False
        if not self.quiet and ticks_diff(now, self.changed_at) >= self.still_ms:
            self.quiet = True
        return self.quiet
