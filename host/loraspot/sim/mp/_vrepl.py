# The board's REPL on the console UART, as the esp32 port runs it once main.py has returned or was
# interrupted: the friendly REPL (">>> ", echo, Ctrl-D soft reset) and the raw REPL (Ctrl-A) with
# raw-paste mode, which mpremote and other tools drive.
#
# Raw REPL, byte for byte: on entry "raw REPL; CTRL-B to exit\r\n", then ">" before each command;
# the command's bytes end with Ctrl-D; the board answers "OK", runs it, sends its output, 0x04,
# the traceback if any, 0x04. Ctrl-D on an empty command soft-resets, Ctrl-B returns to the
# friendly REPL, Ctrl-C clears the command. Raw-paste: Ctrl-E "A" Ctrl-A asks for it; the board
# answers "R\x01" and a 16-bit little-endian window, sends 0x01 each time the host may send one
# more window, 0x04 when it has the end (Ctrl-D) of the command, then runs it as above but
# without the "OK".
# (Output goes through the UART, which turns "\n" into "\r\n" as the board's stdout does.)
import select
import sys

_WINDOW = 128  # raw-paste flow-control window: the UART's receive FIFO holds two of them
BANNER = (b"MicroPython v1.29 on loraspot virtual board; ESP32 module with ESP32\n"
          b'Type "help()" for more information.\n')
RAW_BANNER = b"raw REPL; CTRL-B to exit\n"


class Repl:
    def __init__(self, g):
        self.g = g
        self._in = sys.stdin.buffer
        self._out = sys.stdout.buffer
        self._poll = select.poll()
        self._poll.register(self._in, select.POLLIN)
        self._buf = bytearray(256)
        self._n = 0
        self._pos = 0

    def w(self, data):
        self._out.write(data)

    def getc(self):
        """The next byte from the UART; 3 for a Ctrl-C (which reaches the interpreter as an
        interrupt); EOFError once the line is gone."""
        while self._pos >= self._n:
            try:
                self._poll.poll(-1)
                n = self._in.readinto(self._buf)
            except KeyboardInterrupt:
                return 3
            if n is None:
                continue
            if n == 0:
                raise EOFError
            self._n, self._pos = n, 0
        c = self._buf[self._pos]
        self._pos += 1
        return c

    def run(self, mode="friendly"):
        """Serve the REPL until a soft reset is asked for; return "friendly" or "raw": the REPL
        the board comes back to after it."""
        while True:
            mode = self.raw() if mode == "raw" else self.friendly()
            if mode.startswith("soft"):
                return mode[5:]

    # --- friendly REPL ----------------------------------------------------------------------------
    def friendly(self):
        self.w(BANNER)
        lines = []
        line = bytearray()
        self.w(b">>> ")
        while True:
            c = self.getc()
            if c == 1:  # Ctrl-A
                self.w(b"\n")
                return "raw"
            if c == 2:  # Ctrl-B
                self.w(b"\n" + BANNER + b">>> ")
                lines, line = [], bytearray()
            elif c == 3:
                self.w(b"\n")
                if lines or line:
                    self.w(b"KeyboardInterrupt\n")
                lines, line = [], bytearray()
                self.w(b">>> ")
            elif c == 4:
                if not line and not lines:
                    self.w(b"\n")
                    return "soft friendly"
            elif c in (8, 127):
                if line:
                    line.pop()
                    self.w(b"\x08 \x08")
            elif c == 13 or c == 10:
                self.w(b"\n")
                text = line.decode()
                line = bytearray()
                if lines or text.rstrip().endswith(":"):
                    if text.strip():
                        lines.append(text)
                        self.w(b"... ")
                        continue
                    text = "\n".join(lines)
                    lines = []
                if text.strip():
                    self.interactive(text)
                self.w(b">>> ")
            elif c >= 32 or c == 9:
                line.append(c)
                self._out.write(bytes((c,)))

    def interactive(self, text):
        try:
            try:
                code = compile(text, "<stdin>", "single")
            except SyntaxError:
                code = compile(text, "<stdin>", "exec")
            exec(code, self.g)
        except KeyboardInterrupt:
            self.w(b"KeyboardInterrupt:\n")
        except Exception as e:
            sys.print_exception(e)

    # --- raw REPL -----------------------------------------------------------------------------------
    def raw(self):
        self.w(RAW_BANNER)
        while True:
            self.w(b">")
            cmd = bytearray()
            while True:
                c = self.getc()
                if c == 1:  # Ctrl-A: raw-paste request when the command so far is Ctrl-E "A"
                    if cmd == b"\x05A":
                        self.paste()
                        break
                    cmd = bytearray()
                    self.w(b"\n" + RAW_BANNER + b">")
                elif c == 2:
                    self.w(b"\n")
                    return "friendly"
                elif c == 3:
                    cmd = bytearray()
                elif c == 4:
                    if not cmd:
                        self.w(b"\n")
                        return "soft raw"
                    self.w(b"OK")
                    self.execute(cmd)
                    break
                else:
                    cmd.append(c)

    def paste(self):
        self.w(b"R\x01" + bytes((_WINDOW & 0xFF, _WINDOW >> 8)))
        cmd = bytearray()
        room = _WINDOW
        while True:
            c = self.getc()
            if c == 4:
                self.w(b"\x04")
                break
            if c == 3:
                self.w(b"\x04")
                return
            cmd.append(c)
            room -= 1
            if room == 0:
                self.w(b"\x01")
                room = _WINDOW
        self.execute(cmd)

    def execute(self, cmd):
        try:
            code = compile(bytes(cmd).decode(), "<stdin>", "exec")
            del cmd
            exec(code, self.g)
        except BaseException as e:  # KeyboardInterrupt and SystemExit end the command as on a board
            self.w(b"\x04")
            sys.print_exception(e)
            self.w(b"\x04")
            return
        self.w(b"\x04\x04")
