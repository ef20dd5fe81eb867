# Runs inside the client namespace of the kernel differential test.
# stdin: JSON lines {"src", "sport", "dst", "dport"}; argv[1]: timeout in seconds.
# stdout: one JSON list, per probe "accept", "reject:<errno>" or "drop".
# Every connect is non-blocking and they all run at once; a single SYN decides
# (the timeout is well below the first SYN retransmission at 1 s).
import errno
import json
import selectors
import socket
import sys
import time

probes = [json.loads(line) for line in sys.stdin if line.strip()]
timeout = float(sys.argv[1])
sel = selectors.DefaultSelector()
result = [None] * len(probes)
pending = {}
for i, p in enumerate(probes):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((p["src"], p["sport"]))
    s.setblocking(False)
    e = s.connect_ex((p["dst"], p["dport"]))
    if e == 0:
        result[i] = "accept"
        s.close()
    elif e != errno.EINPROGRESS:
        result[i] = "reject:%d" % e
        s.close()
    else:
        sel.register(s, selectors.EVENT_WRITE, i)
        pending[i] = s
deadline = time.monotonic() + timeout
while pending:
    left = deadline - time.monotonic()
    if left <= 0:
        break
    for key, _ in sel.select(left):
        i = key.data
        s = pending.pop(i)
        sel.unregister(s)
        e = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        result[i] = "accept" if e == 0 else "reject:%d" % e
        s.close()
for i, s in pending.items():
    result[i] = "drop"
    s.close()
print(json.dumps(result))
