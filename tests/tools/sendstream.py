#!/usr/bin/env python3
"""btrfs send streams for tests/integration/cache-stream.sh, made by hand
the way the kernel frames them (fs/btrfs/send.h: a 17-byte header, then
commands of a 10-byte header -- le32 length, le16 command, le32 crc32c --
and TLV attributes), to play streams btrfs send never writes.

  sendstream.py check STREAM        recompute every command's crc32c:
                                    proves this framing is the kernel's
  sendstream.py escape HEADER LINK  a volmgr stream (HEADER is its JSON
                                    line) whose subvolume has a symlink
                                    "esc" -> LINK and then writes the file
                                    "esc/pwned" through it
  sendstream.py clone HEADER UUID   one whose file "stolen" clones 1 MiB
                                    of file "data" of the subvolume UUID
                                    (as `btrfs send -c` writes it)
  sendstream.py clone2 HEADER UUID  the same clone naming first the
                                    stream's own UUID, then UUID (btrfs
                                    receive keeps the last)
  sendstream.py dotdot HEADER       a clone of its own subvolume whose
                                    source path is "../../caches/x"
  sendstream.py v2 HEADER           a version 2 stream (one subvolume)
  sendstream.py fifoclone HEADER    a clone of its own subvolume whose
                                    source is a fifo the stream made:
                                    btrfs receive blocks opening it
"""
import os
import struct
import sys
import uuid

C_SUBVOL, C_MKFILE, C_MKFIFO, C_SYMLINK, C_RENAME, C_WRITE, C_END = 1, 3, 6, 8, 9, 15, 21
A_UUID, A_CTRANSID, A_INO, A_PATH, A_PATH_TO, A_PATH_LINK = 1, 2, 3, 15, 16, 17
A_FILE_OFFSET, A_DATA = 18, 19
A_CLONE_UUID, A_CLONE_CTRANSID, A_CLONE_PATH, A_CLONE_OFFSET, A_CLONE_LEN = 20, 21, 22, 23, 24
C_CLONE = 16


def crc32c(data, crc=0):
    # btrfs's crc32c: Castagnoli, reflected, seed 0, no final xor
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc


def tlv(t, v):
    return struct.pack("<HH", t, len(v)) + v


def cmd(c, *tlvs):
    body = b"".join(tlvs)
    hdr = struct.pack("<IHI", len(body), c, 0)
    crc = crc32c(hdr + body)
    return struct.pack("<IHI", len(body), c, crc) + body


def stream(header, *cmds, version=1):
    """A volmgr stream: HEADER's line, btrfs's 17-byte header, CMDS, END."""
    return (header.encode() + b"\n" + b"btrfs-stream\0" + struct.pack("<I", version)
            + b"".join(cmds) + cmd(C_END))


def check(path):
    data = open(path, "rb").read()
    if not data.startswith(b"btrfs-stream\0"):
        sys.exit("no btrfs-stream magic")
    off, n = 17, 0
    while off < len(data):
        ln, c, crc = struct.unpack_from("<IHI", data, off)
        frame = bytearray(data[off:off + 10 + ln])
        frame[6:10] = b"\0\0\0\0"
        if crc32c(bytes(frame)) != crc:
            sys.exit("command %d (type %d): crc mismatch" % (n, c))
        off += 10 + ln
        n += 1
    print("%d commands, every crc32c matches" % n)


def escape(header, link):
    os.write(1, stream(
        header,
        cmd(C_SUBVOL, tlv(A_PATH, b"evil"), tlv(A_UUID, uuid.uuid4().bytes),
            tlv(A_CTRANSID, struct.pack("<Q", 7))),
        cmd(C_SYMLINK, tlv(A_PATH, b"esc"), tlv(A_INO, struct.pack("<Q", 257)),
            tlv(A_PATH_LINK, link.encode())),
        cmd(C_MKFILE, tlv(A_PATH, b"esc/pwned"), tlv(A_INO, struct.pack("<Q", 258))),
        cmd(C_WRITE, tlv(A_PATH, b"esc/pwned"), tlv(A_FILE_OFFSET, struct.pack("<Q", 0)),
            tlv(A_DATA, b"written outside the subvolume\n"))))


def u64(v):
    return struct.pack("<Q", v)


def clone(header, src_uuid, mode="plain", version=1):
    own = uuid.uuid4().bytes
    uuids = {"plain": [uuid.UUID(src_uuid).bytes], "clone2": [own, uuid.UUID(src_uuid).bytes],
             "dotdot": [own]}[mode]
    path = b"../../caches/x" if mode == "dotdot" else b"data"
    os.write(1, stream(
        header,
        cmd(C_SUBVOL, tlv(A_PATH, b"thief"), tlv(A_UUID, own), tlv(A_CTRANSID, u64(7))),
        cmd(C_MKFILE, tlv(A_PATH, b"stolen"), tlv(A_INO, u64(257))),
        cmd(C_CLONE, tlv(A_FILE_OFFSET, u64(0)), tlv(A_CLONE_LEN, u64(1 << 20)),
            tlv(A_PATH, b"stolen"), *[tlv(A_CLONE_UUID, u) for u in uuids],
            tlv(A_CLONE_CTRANSID, u64(7)), tlv(A_CLONE_PATH, path),
            tlv(A_CLONE_OFFSET, u64(0))),
        version=version))


def fifoclone(header):
    own = uuid.uuid4().bytes
    os.write(1, stream(
        header,
        cmd(C_SUBVOL, tlv(A_PATH, b"stuck"), tlv(A_UUID, own), tlv(A_CTRANSID, u64(7))),
        cmd(C_MKFIFO, tlv(A_PATH, b"f"), tlv(A_INO, u64(257))),
        cmd(C_MKFILE, tlv(A_PATH, b"a"), tlv(A_INO, u64(258))),
        cmd(C_CLONE, tlv(A_FILE_OFFSET, u64(0)), tlv(A_CLONE_LEN, u64(4096)),
            tlv(A_PATH, b"a"), tlv(A_CLONE_UUID, own), tlv(A_CLONE_CTRANSID, u64(7)),
            tlv(A_CLONE_PATH, b"f"), tlv(A_CLONE_OFFSET, u64(0)))))


if __name__ == "__main__":
    if sys.argv[1:2] == ["check"]:
        check(sys.argv[2])
    elif sys.argv[1:2] == ["clone"]:
        clone(sys.argv[2], sys.argv[3])
    elif sys.argv[1:2] == ["clone2"]:
        clone(sys.argv[2], sys.argv[3], "clone2")
    elif sys.argv[1:2] == ["dotdot"]:
        clone(sys.argv[2], str(uuid.uuid4()), "dotdot")
    elif sys.argv[1:2] == ["fifoclone"]:
        fifoclone(sys.argv[2])
    elif sys.argv[1:2] == ["v2"]:
        clone(sys.argv[2], str(uuid.uuid4()), "dotdot", version=2)
    elif sys.argv[1:2] == ["escape"]:
        escape(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)
