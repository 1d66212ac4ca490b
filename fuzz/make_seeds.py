"""Split every message payload of an uncompressed MCAP file into its own file (cdr seeds).

    python3 make_seeds.py FILE.mcap OUT_DIR

Reads MCAP records (opcode u8, length u64 LE) at top level and inside uncompressed chunks; each
Message record (opcode 0x05: channel u16, sequence u32, log_time u64, publish_time u64, data) gives
OUT_DIR/<channel>-<sequence>.cdr.
"""
import os
import struct
import sys

MAGIC = b"\x89MCAP0\r\n"


def records(buf):
    at = 0
    while at + 9 <= len(buf):
        op, n = struct.unpack_from("<BQ", buf, at)
        yield op, buf[at + 9 : at + 9 + n]
        at += 9 + n


def messages(buf):
    for op, body in records(buf):
        if op == 0x05:
            chan, seq = struct.unpack_from("<HI", body, 0)
            yield chan, seq, body[22:]
        elif op == 0x06:  # chunk: start u64, end u64, size u64, crc u32, compression str, records
            (clen,) = struct.unpack_from("<I", body, 28)
            compression = body[32 : 32 + clen]
            if compression:
                sys.exit(f"chunk compressed with {compression!r}: convert with --compression none")
            (rlen,) = struct.unpack_from("<Q", body, 32 + clen)
            yield from messages(body[40 + clen : 40 + clen + rlen])


def main():
    path, out = sys.argv[1], sys.argv[2]
    data = open(path, "rb").read()
    if not data.startswith(MAGIC):
        sys.exit(f"{path}: not an MCAP file")
    os.makedirs(out, exist_ok=True)
    count = 0
    for chan, seq, payload in messages(data[len(MAGIC) :]):
        with open(os.path.join(out, f"{chan}-{seq}.cdr"), "wb") as f:
            f.write(payload)
        count += 1
    print(f"{count} payloads -> {out}")


if __name__ == "__main__":
    main()
