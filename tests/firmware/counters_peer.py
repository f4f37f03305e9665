# Hands out LoRaWAN counters forever, printing each one after it is reserved (as the stack does
# before transmitting); tests/host/test_counters_kill.py kills it at random moments.
import sys

from spot.lorawan.store import Counters

c = Counters(sys.argv[1] + "/lorawan.json", block=4).load()
if c.devaddr is None:
    c.new_session("01020304")
i = 0
while True:
    if i % 7 == 0:
        print("N", c.next_devnonce(), ".")
    else:
        print("U", c.next_fcnt_up(), ".")
    i += 1
