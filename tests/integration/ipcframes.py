"""IPC frames as src/ipc.h lays them out, for the tests that build, read or
exchange them. A frame is an 8-byte header (u32 payload length, u16 type, two
zero bytes; little endian) then the payload; a str field is a u32 length then
the bytes. The type and role numbers are read from src/ipc.h."""
import json
import os
import re
import socket
import struct
import time

from conftest import ROOT

HEADER = 8
TS = "2026-01-02T03:04:05.678Z"     # the timestamp deliver_frame writes unless told


def _read_ipc_h():
    """({name: number} of enum ipc_type and enum ipc_role, IPC_VERSION)."""
    with open(os.path.join(ROOT, "src", "ipc.h")) as f:
        text = re.sub(r"/\*.*?\*/", "", f.read(), flags=re.S)
    numbers = {}
    for body in re.findall(r"enum ipc_(?:type|role) \{(.*?)\};", text, re.S):
        n = 0
        for name, value in re.findall(r"\b(IPC_[A-Z_]+)\s*(?:=\s*(\d+))?", body):
            n = int(value) if value else n + 1
            numbers[name] = n
    return numbers, int(re.search(r"#define IPC_VERSION (\d+)", text).group(1))


IPC, IPC_VERSION = _read_ipc_h()


# ---- building ------------------------------------------------------------------------

def ipc_str(b):
    """A str field."""
    return struct.pack("<I", len(b)) + b


def ipc_frame(type_, payload):
    """A frame of type_ around payload."""
    return struct.pack("<IHH", len(payload), type_, 0) + payload


def deliver_frame(room, seq, epoch, event="tick", data=b'{"n":1}', gpos=0, ts=TS):
    """An IPC_DELIVER frame laid out as ipc.h and proto.c make it."""
    ev = b'{"type":"event","room":' + json.dumps(room).encode() + \
        b',"seq":%d,"epoch":"%s","event":' % (seq, epoch.encode())
    event_off = len(ev)
    name = json.dumps(event).encode()
    ev += name + b',"data":'
    data_off = len(ev)
    ev += data
    ts_off = len(ev) + 7
    ev += b',"ts":"' + ts.encode() + b'"}'
    payload = ipc_str(room.encode()) + struct.pack("<Q", seq) + ipc_str(epoch.encode()) + \
        struct.pack("<QIIIII", gpos, event_off, len(name), data_off, len(data), ts_off) + \
        ipc_str(ev)
    return ipc_frame(IPC["IPC_DELIVER"], payload)


# ---- reading -------------------------------------------------------------------------

def parse_deliver(p):
    """The fields of one IPC_DELIVER payload, every byte accounted for, plus
    the event and data of the event message it carries, after checking that
    message against the fields and that the offsets point at its parts."""
    pos = 0

    def take(fmt):
        nonlocal pos
        v = struct.unpack_from(fmt, p, pos)[0]
        pos += struct.calcsize(fmt)
        return v

    def string():
        nonlocal pos
        n = take("<I")
        v = p[pos:pos + n]
        assert len(v) == n
        pos += n
        return v

    m = {"room": string().decode(), "seq": take("<Q"), "epoch": string().decode(),
         "gpos": take("<Q")}
    m["event_off"], m["event_len"], m["data_off"], m["data_len"], m["ts_off"] = \
        (take("<I") for _ in range(5))
    m["payload"] = body = string()
    assert pos == len(p), "bytes left over in an IPC_DELIVER payload"
    ev = json.loads(body)
    assert (ev["type"], ev["room"], ev["seq"], ev["epoch"]) == \
        ("event", m["room"], m["seq"], m["epoch"])
    assert json.loads(body[m["event_off"]:m["event_off"] + m["event_len"]]) == ev["event"]
    assert json.loads(body[m["data_off"]:m["data_off"] + m["data_len"]]) == ev["data"]
    assert body[m["ts_off"]:].startswith(ev["ts"].encode())
    m["event"], m["data"] = ev["event"], ev["data"]
    return m


def deliver_frames(body):
    """The IPC_DELIVER frames concatenated in body, each as parse_deliver gives it."""
    out, off = [], 0
    while off < len(body):
        assert len(body) - off >= HEADER, "truncated frame header"
        n, ftype, pad = struct.unpack_from("<IHH", body, off)
        assert ftype == IPC["IPC_DELIVER"] and pad == 0, (ftype, pad)
        assert len(body) - off - HEADER >= n, "truncated frame"
        out.append(parse_deliver(body[off + HEADER:off + HEADER + n]))
        off += HEADER + n
    return out


def deliver_fields(frame):
    """parse_deliver of frame, which must be exactly one IPC_DELIVER frame."""
    [m] = deliver_frames(frame)
    return m


# ---- a worker's side of the hub's socket ---------------------------------------------

class FakeWorker:
    """Speaks the worker side of IPC on the hub's Unix socket (on an edge, the
    relay's), in a slot no real worker has."""

    def __init__(self, herald, slot=63):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(5)
        self.sock.connect(f"\0heraldd-{herald.proc.pid}-hub")
        self.buf = b""
        self.send(IPC["IPC_HELLO"], struct.pack("<IIII", IPC_VERSION, IPC["IPC_ROLE_WORKER"],
                                                 slot, os.getpid()))
        assert self.recv(IPC["IPC_HELLO"])[0] == IPC["IPC_HELLO"]
        self.next_req = 0

    def send(self, type_, payload):
        self.sock.sendall(ipc_frame(type_, payload))

    def recv(self, *types, timeout=5):
        """The next message of one of types (others are skipped): (type, payload, raw)."""
        deadline = time.time() + timeout
        while True:
            while len(self.buf) >= HEADER:
                n, t = struct.unpack("<IH", self.buf[:6])
                if len(self.buf) < HEADER + n:
                    break
                raw, self.buf = self.buf[:HEADER + n], self.buf[HEADER + n:]
                if t in types:
                    return t, raw[HEADER:], raw
            left = deadline - time.time()
            assert left > 0, f"no message of types {types}"
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(1 << 20)
            except socket.timeout:
                chunk = None
            assert chunk is None or chunk, "the hub closed the link"
            self.buf += chunk or b""

    def join(self, room):
        """IPC_ROOM_JOIN; returns the IPC_ROOM_STATE answer."""
        self.send(IPC["IPC_ROOM_JOIN"], ipc_str(room.encode()))
        return self.state()

    def state(self, timeout=5):
        """The next IPC_ROOM_STATE: (room, epoch, last_seq)."""
        _, p, _ = self.recv(IPC["IPC_ROOM_STATE"], timeout=timeout)
        n = struct.unpack("<I", p[:4])[0]
        room, p = p[4:4 + n].decode(), p[4 + n:]
        n = struct.unpack("<I", p[:4])[0]
        epoch, p = p[4:4 + n].decode(), p[4 + n:]
        return room, epoch, struct.unpack("<Q", p)[0]

    def deliveries(self, count, timeout=5):
        """The next count IPC_DELIVER frames, as received."""
        return [self.recv(IPC["IPC_DELIVER"], timeout=timeout)[2] for _ in range(count)]

    def request(self, q):
        """An IPC_REQUEST of q: (status, body bytes) of its IPC_REPLY."""
        self.next_req += 1
        body = json.dumps(q).encode()
        self.send(IPC["IPC_REQUEST"], struct.pack("<Q", self.next_req) + ipc_str(body))
        _, p, _ = self.recv(IPC["IPC_REPLY"], timeout=10)
        req, status, n = struct.unpack("<QII", p[:16])
        assert req == self.next_req
        return status, p[16:16 + n]

    def close(self):
        self.sock.close()
