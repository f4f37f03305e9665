import random
import pytest
from loraspot.console.files import put_file
pytestmark = pytest.mark.e2e

def test_dbg(board):
    data = random.Random(7).randbytes(64 * 1024)
    seen = bytearray(); board.board.uart.add_sink(seen.extend)
    client, _ = board.connect(baud=921600)
    try:
        with client:
            put_file(client, "/data.bin", data)
    except Exception as e:
        print("FAIL", e, board.board.uart.counters, board.status[-3:])
        txt = bytes(seen)
        print("TAIL", txt[-1500:])
        print("LOGS", client.logs[-5:], client.orphan_errors)
        raise
