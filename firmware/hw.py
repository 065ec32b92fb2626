# The board's outputs: door relay, status LEDs, watchdog, and facts about the board itself.

import machine

try:
    import pyb
except ImportError:  # boards without the STM32 pyb module (RT1062)
    pyb = None

BLINK_MS = 250


class Relay:
    """The door relay on a pin, inactive (door closed) from the moment it is created."""

    def __init__(self, pin_name, active_high):
        self.on_level = 1 if active_high else 0
        self.off_level = 1 - self.on_level
        self.pin = machine.Pin(pin_name, machine.Pin.OUT, value=self.off_level)
        self.pin.value(self.off_level)
        self.active = False

    def set(self, on):
        if on != self.active:
            self.pin.value(self.on_level if on else self.off_level)
            self.active = on

    def release(self):
        self.pin.value(self.off_level)
        self.active = False


class _Led:
    def __init__(self, index, name):
        if pyb is not None:
            self.led = pyb.LED(index)
        else:
            self.led = machine.LED(name)
        self.lit = None

    def set(self, lit):
        if lit != self.lit:
            if lit:
                self.led.on()
            else:
                self.led.off()
            self.lit = lit


class Leds:
    """green: door open; red: door closed; red blinking: fault (door held closed);
    blue: the log is wanted but cannot be written (no card, card full, write error)."""

    def __init__(self, enabled):
        self.enabled = enabled
        self.red = _Led(1, "LED_RED")
        self.green = _Led(2, "LED_GREEN")
        self.blue = _Led(3, "LED_BLUE")
        self.off()

    def show(self, now, door_open, fault, log_problem):
        if not self.enabled:
            return
        if fault:
            self.green.set(False)
            self.red.set((now // BLINK_MS) % 2 == 0)
        else:
            self.green.set(door_open)
            self.red.set(not door_open)
        self.blue.set(log_problem)

    def off(self):
        self.red.set(False)
        self.green.set(False)
        self.blue.set(False)


class Watchdog:
    """machine.WDT once enabled cannot be stopped: a loop that stops feeding it resets the board."""

    def __init__(self, enabled, timeout_ms):
        self.wdt = machine.WDT(timeout=timeout_ms) if enabled else None

    def feed(self):
        if self.wdt is not None:
            self.wdt.feed()


def reset():
    """Hard reset: main.py runs again with a clean heap and fb_alloc (a soft reset would not re-run it)."""
    machine.reset()


def reset_by_watchdog():
    try:
        return machine.reset_cause() == machine.WDT_RESET
    except AttributeError:
        return False


def unique_id():
    import binascii
    try:
        return binascii.hexlify(machine.unique_id()).decode()
    except AttributeError:
        return "unknown"


def omv_version():
    try:
        import omv
        return omv.version_string()
    except (ImportError, AttributeError):
        return "unknown"
