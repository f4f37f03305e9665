"""Test-only gateway: bridges the RF medium to the host join server (three EU868 uplink channels
at SF7, downlinks at the exact RX1 time). Not product code: the hotspot role is the real one."""

from __future__ import annotations

import threading

from loraspot.lorawan.joinserver import JoinError, JoinServer
from loraspot.sim.medium import F_CRC, F_IQ_INVERTED, Cfg, Medium, MediumClient, Reception

EU_CHANNELS = (868_100_000, 868_300_000, 868_500_000)


class Gateway:
    def __init__(self, medium: Medium, js: JoinServer, speed: int, pos=(0.0, 0.0, 0.0)):
        self.js = js
        self.log: list[dict] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self.rx = [MediumClient(medium.address, f"gw-rx{i}", pos, speed) for i in range(len(EU_CHANNELS))]
        self.tx = MediumClient(medium.address, "gw-tx", pos, speed)
        for client, freq in zip(self.rx, EU_CHANNELS, strict=True):
            client.listen(Cfg(freq, 7, 125_000, 5, 8, F_CRC, 0x34, 14))
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(c,), daemon=True) for c in self.rx]
        for t in self._threads:
            t.start()

    def _run(self, client: MediumClient) -> None:
        while not self._stop.is_set():
            try:
                r = client.receive(timeout=0.2)
            except OSError:
                return
            if isinstance(r, Reception):
                try:
                    self._handle(r)
                except JoinError as e:
                    self.errors.append(str(e))

    def _send(self, phy: bytes, freq: int, at: int) -> None:
        with self._lock:
            self.tx.transmit(phy, Cfg(freq, 7, 125_000, 5, 8, F_IQ_INVERTED, 0x34, 14), at)

    def _handle(self, r: Reception) -> None:
        phy = r.payload
        if phy[0] >> 5 == 0:
            accept, session = self.js.join(phy)
            self.log.append({"join": session.dev_eui, "devaddr": session.devaddr.hex(), "at": r.rx_done})
            self._send(accept, r.cfg.freq, r.rx_done + 5_000_000)
            return
        session, f = self.js.uplink(phy)
        self.log.append({"uplink": f.fcnt16, "confirmed": f.mtype == "ConfirmedDataUp", "payload": f.payload,
                         "at": r.rx_done, "rssi": r.rssi})
        if f.mtype == "ConfirmedDataUp":
            down = self.js.downlink(session, ack=True, fport=3, payload=b"ok")
            self._send(down, r.cfg.freq, r.rx_done + self.js.rx_delay * 1_000_000)

    def close(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(2)
        for c in (*self.rx, self.tx):
            c.close()
