# Helper of the pipeline kernel differential tests (kernel_pipeline.rs in
# ringfence-analysis, nft_pipeline_differential.rs in ringfence-lab); it runs
# inside a namespace the test created.
#
# pipeline.py agent PORT...
#   Listens on every PORT for TCP (accept, close) and UDP (echo) on all
#   addresses, and records the first packet of every connection delivered to
#   this namespace's own stack: raw IP sockets get a copy of each TCP and UDP
#   packet after the INPUT hook accepted it, so "recorded" means "netfilter
#   here delivered it". Prints "ready". On each stdin line "dump" it prints
#   one JSON list of [proto, src, sport, dst, dport] (TCP: SYN without ACK;
#   UDP: every datagram; ICMP: echo and timestamp requests, with the
#   identifier as sport and 0 as dport) recorded since the last dump.
#
# pipeline.py send TIMEOUT
#   stdin: JSON lines {"proto": 1|6|17, "src", "sport", "dst", "dport",
#   "payload", "icmp_type"} (payload: UDP datagram bytes, default 2; ICMP:
#   "icmp_type" 8 or 13 and "sport" the identifier, sent and not awaited:
#   "sent"). Opens
#   every probe at once from the bound source address and port (TCP: one
#   non-blocking connect; UDP: one datagram on a connected socket, then waits
#   for the echo), waits up to TIMEOUT seconds (below the first SYN
#   retransmission at 1 s, so each probe is a single first packet), and
#   prints one JSON list: per probe "accept", "reject:<errno>", "drop" or
#   (ICMP) "sent", as
#   the sender saw it (for the test's tallies; the verdict is the agent's).
import errno
import json
import selectors
import socket
import struct
import sys
import time


def agent(ports):
    sel = selectors.DefaultSelector()
    for port in ports:
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        t.bind(("0.0.0.0", port))
        t.listen(1024)
        t.setblocking(False)
        sel.register(t, selectors.EVENT_READ, "tcp")
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.bind(("0.0.0.0", port))
        u.setblocking(False)
        sel.register(u, selectors.EVENT_READ, "udp")
    raws = []
    for proto in (socket.IPPROTO_TCP, socket.IPPROTO_UDP, socket.IPPROTO_ICMP):
        r = socket.socket(socket.AF_INET, socket.SOCK_RAW, proto)
        r.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
        r.setblocking(False)
        sel.register(r, selectors.EVENT_READ, "raw")
        raws.append(r)
    sel.register(sys.stdin, selectors.EVENT_READ, "cmd")
    seen = []

    def drain(r):
        while True:
            try:
                data = r.recv(65535)
            except BlockingIOError:
                return
            if len(data) < 20:
                continue
            ihl = (data[0] & 15) * 4
            proto = data[9]
            src = socket.inet_ntoa(data[12:16])
            dst = socket.inet_ntoa(data[16:20])
            l4 = data[ihl:]
            if len(l4) < 8:
                continue
            if proto == socket.IPPROTO_ICMP:
                # Echo and timestamp requests only (not the replies or the
                # errors the stack sends back), keyed by their identifier.
                if l4[0] not in (8, 13):
                    continue
                (ident,) = struct.unpack("!H", l4[4:6])
                seen.append([proto, src, ident, dst, 0])
                continue
            sport, dport = struct.unpack("!HH", l4[:4])
            if proto == socket.IPPROTO_TCP:
                if len(l4) < 14:
                    continue
                flags = l4[13]
                if not (flags & 0x02) or (flags & 0x10):
                    continue
            seen.append([proto, src, sport, dst, dport])

    print("ready", flush=True)
    while True:
        for key, _ in sel.select():
            kind = key.data
            s = key.fileobj
            if kind == "raw":
                drain(s)
            elif kind == "tcp":
                try:
                    conn, _ = s.accept()
                    conn.close()
                except OSError:
                    pass
            elif kind == "udp":
                try:
                    data, peer = s.recvfrom(2048)
                    s.sendto(data, peer)
                except OSError:
                    pass
            else:
                line = sys.stdin.readline()
                if not line:
                    return
                if line.strip() == "dump":
                    for r in raws:
                        drain(r)
                    print(json.dumps(seen), flush=True)
                    seen = []


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def send_icmp(p):
    # One echo request (8 payload bytes) or timestamp request (its three
    # 32-bit times), identifier = the probe's "sport"; not awaited.
    kind = p["icmp_type"]
    body = b"rf-probe" if kind == 8 else bytes(12)
    head = struct.pack("!BBHHH", kind, 0, 0, p["sport"], 1)
    pkt = head[:2] + struct.pack("!H", checksum(head + body)) + head[4:] + body
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    try:
        s.bind((p["src"], 0))
        s.sendto(pkt, (p["dst"], 0))
        return "sent"
    except OSError as err:
        return "reject:%d" % (err.errno or errno.EIO)
    finally:
        s.close()


def send(timeout):
    probes = [json.loads(line) for line in sys.stdin if line.strip()]
    sel = selectors.DefaultSelector()
    result = [None] * len(probes)
    pending = {}
    for i, p in enumerate(probes):
        if p["proto"] == 1:
            result[i] = send_icmp(p)
            continue
        udp = p["proto"] == 17
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM if udp else socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.setblocking(False)
        try:
            s.bind((p["src"], p["sport"]))
            if udp:
                s.connect((p["dst"], p["dport"]))
                s.send(b"r" * p.get("payload", 2))
                e = errno.EINPROGRESS
            else:
                e = s.connect_ex((p["dst"], p["dport"]))
        except OSError as err:
            e = err.errno or errno.EIO
        if e == 0:
            result[i] = "accept"
            s.close()
        elif e != errno.EINPROGRESS:
            result[i] = "reject:%d" % e
            s.close()
        else:
            sel.register(s, selectors.EVENT_READ if udp else selectors.EVENT_WRITE, (i, udp))
            pending[i] = s
    deadline = time.monotonic() + timeout
    while pending:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        for key, _ in sel.select(left):
            i, udp = key.data
            s = pending.pop(i)
            sel.unregister(s)
            if udp:
                try:
                    s.recv(2048)
                    result[i] = "accept"
                except OSError as err:
                    result[i] = "reject:%d" % (err.errno or errno.EIO)
            else:
                e = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                result[i] = "accept" if e == 0 else "reject:%d" % e
            s.close()
    for s in pending.values():
        s.close()
    for i in pending:
        result[i] = "drop"
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "agent":
        agent([int(p) for p in sys.argv[2:]])
    elif sys.argv[1] == "send":
        send(float(sys.argv[2]))
    else:
        sys.exit("usage: pipeline.py agent PORT... | send TIMEOUT")
