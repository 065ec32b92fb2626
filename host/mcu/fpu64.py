"""Double-precision VFP instructions for unicorn's Cortex-M7, which has a single-precision FPU only.

unicorn 2.1 (QEMU 5 based) treats every `.f64` data-processing instruction as undefined on all its
M-profile cores, but the library is built for `fpv5-d16` (the STM32H743's double-precision FPU)
and uses doubles at prepare time (quantization multipliers, softmax and logistic tables). The
invalid-instruction hook executes those instructions here, IEEE-754 exactly (fused multiply-adds
through exact rationals), then steps over them. Loads, stores and moves of D registers are
single-precision-FPU instructions and unicorn runs them itself.
"""

from __future__ import annotations

import math
import struct
from fractions import Fraction

from host.errors import UserError


def _f64(bits: int) -> float:
    return struct.unpack("<d", struct.pack("<Q", bits & 0xFFFFFFFFFFFFFFFF))[0]


def _b64(x: float) -> int:
    return struct.unpack("<Q", struct.pack("<d", x))[0]


def _f32(bits: int) -> float:
    return struct.unpack("<f", struct.pack("<I", bits & 0xFFFFFFFF))[0]


def _b32(x: float) -> int:
    try:
        return struct.unpack("<I", struct.pack("<f", x))[0]
    except OverflowError:
        return struct.unpack("<I", struct.pack("<f", math.copysign(math.inf, x)))[0]


def fma(a: float, b: float, c: float) -> float:
    """a*b + c with one rounding (math.fma arrived in Python 3.13)."""
    if not (math.isfinite(a) and math.isfinite(b) and math.isfinite(c)):
        return a * b + c
    exact = Fraction(a) * Fraction(b) + Fraction(c)
    if exact == 0:
        return a * b + c  # the sign of an exact zero follows IEEE's rules for the plain sum
    try:
        return float(exact)
    except OverflowError:
        return math.copysign(math.inf, exact)


def _to_int(x: float, signed: bool, mode: str) -> int:
    if math.isnan(x):
        return 0
    if math.isinf(x):
        r = x
    elif mode == "z":
        r = math.trunc(x)
    elif mode == "m":
        r = math.floor(x)
    elif mode == "p":
        r = math.ceil(x)
    elif mode == "a":
        r = _round_away(x)
    else:
        r = round(x)  # nearest, ties to even
    lo, hi = (-(1 << 31), (1 << 31) - 1) if signed else (0, (1 << 32) - 1)
    r = lo if r < lo else hi if r > hi else int(r)
    return r & 0xFFFFFFFF


def _round_away(x: float) -> float:
    a = abs(x)
    if a >= 2.0**52:
        return x
    f = math.floor(a)
    r = f + 1 if a - f >= 0.5 else f
    return math.copysign(r, x)


def _rint(x: float, mode: str) -> float:
    if not math.isfinite(x) or abs(x) >= 2.0**52:
        return x
    r = {"a": _round_away, "m": math.floor, "p": math.ceil, "z": math.trunc}.get(mode, round)(x)
    return math.copysign(float(r), x)


class DoubleFpu:
    def __init__(self, arm_const):
        self.arm = arm_const
        self.d = [getattr(arm_const, f"UC_ARM_REG_D{i}") for i in range(16)]
        self.s = [getattr(arm_const, f"UC_ARM_REG_S{i}") for i in range(32)]
        self.executed = 0

    # registers
    def _rd(self, uc, n):
        if n >= 16:
            raise UserError(f"D{n} does not exist on fpv5-d16")
        return _f64(uc.reg_read(self.d[n]))

    def _wd(self, uc, n, x):
        uc.reg_write(self.d[n], _b64(x))

    def _flags(self, uc):
        xpsr = uc.reg_read(self.arm.UC_ARM_REG_XPSR)
        return (xpsr >> 31) & 1, (xpsr >> 30) & 1, (xpsr >> 29) & 1, (xpsr >> 28) & 1

    def _cond(self, uc, cond):
        n, z, c, v = self._flags(uc)
        base = {0: z, 1: not z, 2: c, 3: not c, 4: n, 5: not n, 6: v, 7: not v, 8: c and not z,
                9: not c or z, 10: n == v, 11: n != v, 12: not z and n == v, 13: z or n != v}
        return True if cond >= 14 else bool(base[cond])

    def hook(self, uc, _user_data=None) -> bool:
        pc = uc.reg_read(self.arm.UC_ARM_REG_PC) & ~1
        hw1, hw2 = struct.unpack("<HH", bytes(uc.mem_read(pc, 4)))
        w = (hw1 << 16) | hw2
        xpsr = uc.reg_read(self.arm.UC_ARM_REG_XPSR)
        it = ((xpsr >> 8) & 0xFC) | ((xpsr >> 25) & 0x3)
        run = True
        if it & 0xF:  # inside an IT block
            run = self._cond(uc, it >> 4)
            it = 0 if (it & 0x7) == 0 else (it & 0xE0) | ((it << 1) & 0x1F)
            xpsr = (xpsr & ~((0x3F << 10) | (0x3 << 25))) | ((it >> 2) << 10) | ((it & 3) << 25)
            uc.reg_write(self.arm.UC_ARM_REG_XPSR, xpsr)
        if run:
            self.execute(uc, w, pc)
        self.executed += 1
        uc.reg_write(self.arm.UC_ARM_REG_PC, (pc + 4) | 1)
        return True

    def execute(self, uc, w: int, pc: int) -> None:
        if (w >> 9) & 7 != 0b101 or (w >> 4) & 1:
            self._unknown(w, pc)
        sz = (w >> 8) & 1
        D, Vd, N, Vn, M, Vm = (w >> 22) & 1, (w >> 12) & 0xF, (w >> 7) & 1, (w >> 16) & 0xF, (w >> 5) & 1, w & 0xF
        dd, dn, dm = D << 4 | Vd, N << 4 | Vn, M << 4 | Vm
        sd, sm = Vd << 1 | D, Vm << 1 | M
        top = w >> 24
        op = (w >> 6) & 1
        if top == 0xEE:
            opc1 = ((w >> 23) & 1) << 2 | (w >> 20) & 3
            if opc1 != 7:
                if not sz:
                    self._unknown(w, pc)
                a, b, c = self._rd(uc, dn), self._rd(uc, dm), self._rd(uc, dd)
                if opc1 == 0:
                    r = c + a * b if op == 0 else c - a * b
                elif opc1 == 1:
                    r = -c + a * b if op == 0 else -c - a * b
                elif opc1 == 2:
                    r = a * b if op == 0 else -(a * b)
                elif opc1 == 3:
                    r = a + b if op == 0 else a - b
                elif opc1 == 4 and op == 0:
                    r = _div(a, b)
                elif opc1 == 5:
                    r = fma(a, b, -c) if op == 0 else fma(-a, b, -c)
                elif opc1 == 6:
                    r = fma(a, b, c) if op == 0 else fma(-a, b, c)
                else:
                    self._unknown(w, pc)
                self._wd(uc, dd, r)
                return
            if op == 0:  # VMOV immediate
                imm8 = ((w >> 16) & 0xF) << 4 | (w & 0xF)
                b6 = (imm8 >> 6) & 1
                exp = ((b6 ^ 1) << 10) | ((0xFF if b6 else 0) << 2) | ((imm8 >> 4) & 3)
                bits = ((imm8 >> 7) << 63) | (exp << 52) | ((imm8 & 0xF) << 48)
                uc.reg_write(self.d[dd], bits)
                return
            opc2, b7 = (w >> 16) & 0xF, (w >> 7) & 1
            if opc2 == 7 and b7 == 1:  # VCVT between single and double
                if sz == 0:
                    self._wd(uc, dd, _f32(uc.reg_read(self.s[sm])))
                else:
                    uc.reg_write(self.s[sd], _b32(self._rd(uc, dm)))
                return
            if opc2 == 8:  # VCVT.F64.S32 / .U32: Dd <- Sm
                v = uc.reg_read(self.s[sm]) & 0xFFFFFFFF
                if b7 and v >= 1 << 31:
                    v -= 1 << 32
                self._wd(uc, dd, float(v))
                return
            if not sz:
                self._unknown(w, pc)
            if opc2 in (12, 13):  # VCVT{R}.S32/U32.F64: Sd <- Dm
                mode = "z" if b7 else self._rmode(uc)
                uc.reg_write(self.s[sd], _to_int(self._rd(uc, dm), opc2 == 13, mode))
                return
            x = self._rd(uc, dm)
            if opc2 == 0:
                self._wd(uc, dd, abs(x) if b7 else x)
            elif opc2 == 1:
                self._wd(uc, dd, math.sqrt(x) if b7 and x >= 0 else (math.nan if b7 else -x))
            elif opc2 in (4, 5):
                a = self._rd(uc, dd)
                b = 0.0 if opc2 == 5 else x
                if math.isnan(a) or math.isnan(b):
                    nzcv = 0b0011
                elif a == b:
                    nzcv = 0b0110
                elif a < b:
                    nzcv = 0b1000
                else:
                    nzcv = 0b0010
                fpscr = uc.reg_read(self.arm.UC_ARM_REG_FPSCR)
                uc.reg_write(self.arm.UC_ARM_REG_FPSCR, (fpscr & 0x0FFFFFFF) | (nzcv << 28))
            elif opc2 == 6:
                self._wd(uc, dd, _rint(x, "z" if b7 else self._rmode(uc)))
            elif opc2 == 7:
                self._wd(uc, dd, _rint(x, self._rmode(uc)))
            else:
                self._unknown(w, pc)
            return
        if top == 0xFE and sz:
            if not (w >> 23) & 1:  # VSEL
                cond = {0: 0, 1: 6, 2: 10, 3: 12}[(w >> 20) & 3]
                self._wd(uc, dd, self._rd(uc, dn) if self._cond(uc, cond) else self._rd(uc, dm))
                return
            if (w >> 20) & 3 == 0:  # VMAXNM / VMINNM
                a, b = self._rd(uc, dn), self._rd(uc, dm)
                if math.isnan(a):
                    r = b
                elif math.isnan(b):
                    r = a
                else:
                    r = min(a, b) if op else max(a, b)
                self._wd(uc, dd, r)
                return
            if (w >> 20) & 3 == 3 and (w >> 18) & 3 in (2, 3):
                mode = "anpm"[(w >> 16) & 3]
                if (w >> 18) & 3 == 2:  # VRINT{A,N,P,M}
                    self._wd(uc, dd, _rint(self._rd(uc, dm), mode))
                else:  # VCVT{A,N,P,M}: Sd <- Dm
                    uc.reg_write(self.s[sd], _to_int(self._rd(uc, dm), bool((w >> 7) & 1), mode))
                return
        self._unknown(w, pc)

    def _rmode(self, uc) -> str:
        return "npmz"[(uc.reg_read(self.arm.UC_ARM_REG_FPSCR) >> 22) & 3]

    @staticmethod
    def _unknown(w: int, pc: int):
        raise UserError(f"emulated Cortex-M7: unsupported instruction {w >> 16:04x} {w & 0xFFFF:04x} at {pc:#010x}")


def _div(a: float, b: float) -> float:
    if b == 0.0:
        if a == 0.0 or math.isnan(a):
            return math.nan
        return math.copysign(math.inf, a) * math.copysign(1.0, b)
    return a / b
