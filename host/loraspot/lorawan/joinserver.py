"""A small join server and network-server session keeper for LoRaWAN 1.0.x: verifies
Join-Requests (MIC, DevNonce never reused), answers with Join-Accepts, keeps sessions, verifies
and decrypts uplinks and builds downlinks. Used by `loraspot listen` and by tests."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from loraspot.lorawan import crypto, frame


class JoinError(ValueError):
    pass


@dataclass
class Session:
    dev_eui: str
    devaddr: bytes  # wire order
    nwkskey: bytes
    appskey: bytes
    fcnt_up: int = -1
    fcnt_down: int = 0
    uplinks: int = 0  # verified uplinks (counted: a server running for months keeps no frame list)

    @property
    def devaddr_hex(self) -> str:
        return self.devaddr[::-1].hex().upper()


class JoinServer:
    def __init__(self, net_id: int = 0x000013, rx_delay: int = 1, rx1_dr_offset: int = 0, rx2_dr: int = 0,
                 cflist: list[int] | None = None):
        self.net_id = net_id
        self.rx_delay = rx_delay
        self.dl_settings = (rx1_dr_offset << 4) | rx2_dr
        self.cflist = cflist
        self.keys: dict[str, bytes] = {}
        self.last_nonce: dict[str, int] = {}
        self.sessions: dict[bytes, Session] = {}
        self._next_addr = 1

    def add_device(self, dev_eui: str, appkey: bytes) -> None:
        self.keys[dev_eui.upper()] = bytes(appkey)

    def add_abp(self, dev_eui: str, dev_addr: str, nwkskey: bytes, appskey: bytes) -> bool:
        """An ABP device's session (DevAddr as written, big-endian hex); False when it was known."""
        wire = bytes.fromhex(dev_addr)[::-1]
        s = self.sessions.get(wire)
        if s is not None and (s.nwkskey, s.appskey) == (bytes(nwkskey), bytes(appskey)):
            return False
        self.sessions[wire] = Session(dev_eui.upper(), wire, bytes(nwkskey), bytes(appskey))
        return True

    def join(self, phy: bytes) -> tuple[bytes, Session]:
        """The Join-Accept (as sent on air) for a Join-Request, and the new session."""
        if len(phy) != 23 or phy[0] >> 5 != 0:
            raise JoinError("not a Join-Request")
        dev_eui = phy[9:17][::-1].hex().upper()
        key = self.keys.get(dev_eui)
        if key is None:
            raise JoinError(f"unknown DevEUI {dev_eui}")
        if crypto.join_mic(key, phy[:19]) != phy[19:]:
            raise JoinError("Join-Request MIC does not verify")
        nonce = int.from_bytes(phy[17:19], "little")
        if nonce <= self.last_nonce.get(dev_eui, -1):
            raise JoinError(f"DevNonce {nonce} already used")
        self.last_nonce[dev_eui] = nonce
        app_nonce = secrets.token_bytes(3)
        net_id = self.net_id.to_bytes(3, "little")
        devaddr = ((self.net_id & 0x7F) << 25 | self._next_addr).to_bytes(4, "little")
        self._next_addr += 1
        plain = b"\x20" + app_nonce + net_id + devaddr + bytes([self.dl_settings, self.rx_delay])
        if self.cflist:
            plain += b"".join((f // 100).to_bytes(3, "little") for f in self.cflist[:5]).ljust(15, b"\0") + b"\0"
        plain += crypto.join_mic(key, plain)
        nwk, app = crypto.derive(key, app_nonce + net_id, phy[17:19])
        session = Session(dev_eui, devaddr, nwk, app)
        self.sessions[devaddr] = session
        return crypto.encrypt_join_accept(key, plain), session

    def uplink(self, phy: bytes) -> tuple[Session, frame.DataFrame]:
        """Verify and decrypt a data uplink of a known session; the 32-bit FCnt is rebuilt."""
        if len(phy) < 12:
            raise JoinError("frame too short")
        s = self.sessions.get(phy[1:5])
        if s is None:
            raise JoinError("unknown DevAddr")
        low = int.from_bytes(phy[6:8], "little")
        fcnt = (max(s.fcnt_up, 0) & ~0xFFFF) | low
        if fcnt <= s.fcnt_up:
            fcnt += 0x10000
        f = frame.decode(phy, s.nwkskey, s.appskey, fcnt=fcnt)
        if not f.mic_ok:
            old = fcnt - 0x10000
            if 0 <= old <= s.fcnt_up and frame.decode(phy, s.nwkskey, fcnt=old).mic_ok:
                # an authentic frame of a count already passed: a copy that came late (a gateway's
                # store-and-forward, out of order) or a replay; refused, as a network server does
                raise JoinError(f"FCnt {old} not above the last ({s.fcnt_up}): a late or replayed frame")
            raise JoinError("MIC does not verify")
        s.fcnt_up = fcnt
        s.uplinks += 1
        return s, f

    def downlink(self, s: Session, *, ack: bool = False, fport: int | None = None, payload: bytes = b"",
                 fopts: bytes = b"", confirmed: bool = False) -> bytes:
        phy = frame.build(s.nwkskey, s.appskey, s.devaddr, s.fcnt_down, uplink=False, fport=fport, payload=payload,
                           fopts=fopts, confirmed=confirmed, ack=ack)
        s.fcnt_down += 1
        return phy
