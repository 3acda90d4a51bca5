# The two sockets of volmgrd from Python tests, on sockets the caller has
# connected (so a race can connect first and send at a barrier):
#   control_exchange  one JSON request on the control socket (SOCK_SEQPACKET,
#                     an optional fd passed with SCM_RIGHTS), the reply as a
#                     dict, read from its memfd when it is long ({"reply_fd"})
#   plugin_exchange   one HTTP POST on the plugin socket, read to the
#                     close; (status, payload)
import array, json, os, socket

def control_connect(path, timeout=120):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.settimeout(timeout)
    s.connect(path)
    return s

def control_exchange(s, req, fd=None):
    data = req if isinstance(req, bytes) else json.dumps(req).encode()
    if fd is None:
        s.send(data)
    else:
        s.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))])
    msg, fds, _, _ = socket.recv_fds(s, 65536, 1)
    s.close()
    reply = json.loads(msg)
    for f in fds:
        try:
            if "reply_fd" in reply:
                reply = json.loads(os.pread(f, reply["reply_fd"], 0))
        finally:
            os.close(f)
    return reply

def plugin_connect(path, timeout=120):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(timeout)
    s.connect(path)
    return s

def plugin_exchange(s, path, body):
    """body: bytes as sent.  Raises ValueError when no HTTP reply came."""
    s.sendall(b"POST %s HTTP/1.1\r\nHost: plugin\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
              % (path.encode(), len(body)) + body)
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    head, _, payload = data.partition(b"\r\n\r\n")
    try:
        status = int(head.split(b" ", 2)[1])
    except (IndexError, ValueError):
        raise ValueError(f"{path}: no HTTP reply: {data[:100]!r}")
    return status, payload
