"""A simulated OpenMV Cam that runs the real firmware/main.py on the host (see docs/firmware.md)."""

from host.sim.board import Costs, Faults, FrameRange, StopSimulation, WatchdogReset
from host.sim.frames import Frame, list_frames
from host.sim.runner import SimOptions, SimResult, simulate

__all__ = ["Costs", "Faults", "Frame", "FrameRange", "SimOptions", "SimResult", "StopSimulation",
           "WatchdogReset", "list_frames", "simulate"]
