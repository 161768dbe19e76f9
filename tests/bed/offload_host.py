"""Host side of tests/offload_vm_test.ts (run in the bed's namespace with /usr/bin/python3).

send IFNAME DSTMAC N GSO [GSO6]: sends into IFNAME through AF_PACKET with PACKET_VNET_HDR (so the
  kernel builds partial-checksum and GSO packets, which the tap hands to QEMU as they are):
  per i < N a UDP frame with a right checksum (tag G), one with a wrong one (B), one with a
  partial checksum (P: NEEDS_CSUM, the field holding the pseudo-header sum); then GSO TCP/IPv4
  super-frames of 64,000 payload bytes (NEEDS_CSUM, gso_size 1448), and GSO6 TCP/IPv6 ones
  (gso_size 1428). Prints one JSON line.
read IFNAME WANT TIMEOUT_S: attaches to tap IFNAME through /dev/net/tun without vnet header
  or offloads, so the kernel segments and checksums in software whatever it sends there;
  prints READY, reads until WANT frames from 10.9.0.1 or fd00::1 came (or the timeout), checks each
  frame's IPv4 and TCP/UDP checksums and the TCP segments' payload (IPv6 ones apart, as
  tcp6), prints one JSON line.
"""
import fcntl, json, os, select, socket, struct, sys, time

SRC, DST = bytes([10, 9, 0, 1]), bytes([10, 9, 0, 2])
SRC6, DST6 = bytes.fromhex("fd00" + "00" * 13 + "01"), bytes.fromhex("fd00" + "00" * 13 + "02")
PAYLOAD = 64000


def csum(b, s=0):
    if len(b) % 2:
        b += b"\0"
    for i in range(0, len(b), 2):
        s += (b[i] << 8) | b[i + 1]
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def iphdr(proto, l4len, ident):
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + l4len, ident, 0x4000, 64, proto, 0, SRC, DST)
    return h[:10] + struct.pack("!H", 0xFFFF - csum(h)) + h[12:]


def pattern(base, n):
    return bytes(((base + i) * 7) & 0xFF for i in range(n))


def send(ifname, dst, n, gso, gso6):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.setsockopt(263, 15, 1)  # SOL_PACKET, PACKET_VNET_HDR
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    s.bind((ifname, 0))
    eth = bytes.fromhex(dst.replace(":", "")) + bytes.fromhex("020000000099") + b"\x08\x00"
    none = struct.pack("<BBHHHH", 0, 0, 0, 0, 0, 0)
    sent = 0
    for i in range(n):
        for tag in b"GBP":
            data = bytes([tag]) + struct.pack("!I", i) + pattern(i, 95)
            l4len = 8 + len(data)
            ip = iphdr(17, l4len, i)
            pseudo = csum(SRC + DST, 17 + l4len)
            udp = struct.pack("!HHHH", 4000 + i % 64, 5000, l4len, 0) + data
            if tag == ord("P"):
                # NEEDS_CSUM: csum_start 34, csum_offset 6; the field holds the pseudo-header sum.
                hdr = struct.pack("<BBHHHH", 1, 0, 0, 0, 34, 6)
                c = pseudo
            else:
                hdr = none
                c = 0xFFFF - csum(udp, pseudo)
                if c == 0:
                    c = 0xFFFF
                if tag == ord("B"):
                    c ^= 0x5555
            udp = udp[:6] + struct.pack("!H", c) + udp[8:]
            s.send(hdr + eth + ip + udp)
            sent += 1
            time.sleep(0.002)
    for k in range(gso):
        seq = (k + 1) * 1_000_000
        l4len = 20 + PAYLOAD
        ip = iphdr(6, l4len, 1000 + k)
        pseudo = csum(SRC + DST, 6 + l4len)
        tcp = struct.pack("!HHIIBBHHH", 6000, 7000, seq, 1, 5 << 4, 0x18, 65535, pseudo, 0)
        hdr = struct.pack("<BBHHHH", 1, 1, 54, 1448, 34, 16)  # NEEDS_CSUM, GSO_TCPV4
        s.send(hdr + eth + ip + tcp + pattern(seq, PAYLOAD))
        sent += 1
        time.sleep(0.2)
    eth6 = eth[:12] + b"\x86\xdd"
    for k in range(gso6):
        seq = (k + 11) * 1_000_000
        l4len = 20 + PAYLOAD
        ip6 = struct.pack("!IHBB", 0x60000000, l4len, 6, 64) + SRC6 + DST6
        pseudo = csum(SRC6 + DST6, 6 + l4len)
        tcp = struct.pack("!HHIIBBHHH", 6000, 7000, seq, 1, 5 << 4, 0x18, 65535, pseudo, 0)
        hdr = struct.pack("<BBHHHH", 1, 4, 74, 1428, 54, 16)  # NEEDS_CSUM, GSO_TCPV6
        s.send(hdr + eth6 + ip6 + tcp + pattern(seq, PAYLOAD))
        sent += 1
        time.sleep(0.2)
    print(json.dumps({"sent": sent}), flush=True)


def read(ifname, want, timeout):
    fd = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(fd, 0x400454CA, struct.pack("16sH", ifname.encode(), 0x0002 | 0x1000))
    print("READY", flush=True)
    udp = {t: [0, 0] for t in "GBP"}
    tcp = {}
    got = 0
    until = time.time() + timeout
    while got < want and time.time() < until:
        r, _, _ = select.select([fd], [], [], 0.5)
        if not r:
            continue
        f = os.read(fd, 70000)
        if len(f) >= 54 and f[12:14] == b"\x86\xdd" and f[22:38] == SRC6:
            plen = struct.unpack("!H", f[18:20])[0]
            ipok, proto, l4, pseudo = True, f[20], f[54:54 + plen], SRC6 + DST6
            family = "tcp6"
        elif len(f) >= 34 and f[12:14] == b"\x08\x00" and f[26:30] == SRC:
            ihl = (f[14] & 15) * 4
            ip = f[14:14 + ihl]
            tot = struct.unpack("!H", f[16:18])[0]
            ipok, proto, l4, pseudo = csum(ip) == 0xFFFF, ip[9], f[14 + ihl:14 + tot], SRC + DST
            family = "tcp"
        else:
            continue
        got += 1
        l4ok = csum(l4, csum(pseudo, proto + len(l4))) == 0xFFFF
        if proto == 17:
            udp[chr(l4[8])][0 if l4ok and ipok else 1] += 1
        elif proto == 6:
            t = tcp.setdefault(family, {"segments": 0, "csumOk": 0, "csumBad": 0, "ipBad": 0,
                                        "sizes": {}, "payloadBad": 0, "maxFrame": 0})
            t["segments"] += 1
            t["maxFrame"] = max(t["maxFrame"], len(f))
            t["csumOk" if l4ok else "csumBad"] += 1
            t["ipBad"] += 0 if ipok else 1
            payload = l4[(l4[12] >> 4) * 4:]
            size = str(len(payload))
            t["sizes"][size] = t["sizes"].get(size, 0) + 1
            seq = struct.unpack("!I", l4[4:8])[0]
            base = seq - seq % 1_000_000
            if payload != pattern(seq, len(payload)) or seq + len(payload) > base + PAYLOAD:
                t["payloadBad"] += 1
    print(json.dumps({"frames": got, "udp": udp, "tcp": tcp.get("tcp"), "tcp6": tcp.get("tcp6")}),
          flush=True)


if sys.argv[1] == "send":
    send(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]),
         int(sys.argv[6]) if len(sys.argv) > 6 else 0)
else:
    read(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
