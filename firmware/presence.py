# The presence gate: is there anything in the window that could be a face? Cheap frame statistics
# only (img.get_statistics, imlib's L*a*b* histograms), run before the door may count a frame:
#   dark   every block's mean lightness <= presence_dark_l      (lens covered, lights off)
#   flat   every block's lightness stdev <= presence_flat_l     (paper, a blank wall, a gradient)
#   plain  block means differ by <= presence_plain_l            (noise, a uniform texture)
# A gated frame is logged as `none` and never counts toward opening the door. The blocks are a
# presence_grid x presence_grid layout of presence_block-pixel squares centred in the window's
# cells, so the cost is a fixed number of pixels whatever the window. Integer arithmetic only: the
# host (host/gate.py) runs this very code and must get the same answer. docs/presence.md.

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
        self.size = None
        self.rois = ()

    def check(self, img):
        """None when the frame may hold a face, else DARK, FLAT or PLAIN."""
        if not self.enabled:
            return None
        width = img.width()
        height = img.height()
        if self.size != (width, height):  # once per window size, not per frame
            self.rois = block_rois(width, height, self.grid, self.block)
            self.size = (width, height)
        low = 101
        high = -1
        spread = -1
        for roi in self.rois:
            stats = img.get_statistics(roi=roi)
            mean = stats.l_mean()
            stdev = stats.l_stdev()
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
