# Present only on the virtual board: parameters the board-support code reads (set by vboot).
SPEED = 1
START_US = None
START_MS = None
MEDIUM = None  # (host, port) of the RF medium
POSITION = (0.0, 0.0, 0.0)
RADIO_ID = None
