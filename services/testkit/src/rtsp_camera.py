"""A password-protected RTSP camera for tests: Debian's GStreamer RTSP server (not ours)
streaming a generated test picture as H.264 (x264enc), RTP over the RTSP TCP connection,
digest authentication.

    python3 rtsp_camera.py USER PASSWORD PORT [WIDTH HEIGHT]   (PORT 0: any free port;
                                                                 640x360 unless given)

The picture carries its capture time: the top 16 rows are 40 blocks, black or white, the
wall-clock milliseconds (mod 2^32) when the frame left the test source (before encoding), 32
bits most significant first, then an 8-bit check (the sum of those four bytes, mod 256). A
page that draws the decoded frame reads them back from its canvas for a glass-to-glass latency
(the console's `glass.js`).

Prints, one line each, flushed: `listening PORT` once serving, then `client-connected N`,
`session-new N` (an RTSP session set up by client N) and `client-closed N`, so a test can
count the upstream sessions it serves. Exits 3 with `missing: ...` when a part is absent.
"""
import sys
import time

try:
    import gi

    gi.require_version("Gst", "1.0")
    gi.require_version("GstRtsp", "1.0")
    gi.require_version("GstRtspServer", "1.0")
    from gi.repository import GLib, Gst, GstRtsp, GstRtspServer
except (ImportError, ValueError) as e:
    print(f"missing: {e}", flush=True)
    sys.exit(3)

Gst.init(None)
for element in ("videotestsrc", "x264enc", "rtph264pay"):
    if Gst.ElementFactory.find(element) is None:
        print(f"missing: GStreamer element {element}", flush=True)
        sys.exit(3)

user, password, port = sys.argv[1], sys.argv[2], sys.argv[3]
width, height = (sys.argv[4], sys.argv[5]) if len(sys.argv) > 5 else ("640", "360")
# About 0.1 bit per pixel at 30 frames/s: 1 Mbit/s at 640x360, 6 Mbit/s at 1080p.
bitrate = max(500, int(width) * int(height) * 3 // 1000)

server = GstRtspServer.RTSPServer()
server.set_address("127.0.0.1")
server.set_service(port)

factory = GstRtspServer.RTSPMediaFactory()
# Colour bars scrolling 4 px a frame (a picture a test can tell from a blank); a key frame every
# second (key-int-max=30 at 30 frames/s), as field cameras are set up.
factory.set_launch(
    "( videotestsrc is-live=1 pattern=smpte horizontal-speed=4 "
    f"! video/x-raw,format=I420,width={width},height={height},framerate=30/1 "
    "! identity name=stamp signal-handoffs=true "
    f"! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30 bitrate={bitrate} "
    "! rtph264pay name=pay0 pt=96 config-interval=1 )"
)
# One pipeline for every client, as a camera has one encoder per profile.
factory.set_shared(True)
factory.set_protocols(GstRtsp.RTSPLowerTrans.TCP)

STAMP_BLOCKS = 40
STAMP_ROWS = 16
w, h = int(width), int(height)
block = w // STAMP_BLOCKS
# I420 as GStreamer lays it out: strides rounded up to 4 bytes, chroma at half resolution.
y_stride = (w + 3) // 4 * 4
c_stride = ((w + 1) // 2 + 3) // 4 * 4
u_offset = y_stride * h
v_offset = u_offset + c_stride * ((h + 1) // 2)
# The stamp's chroma is neutral (grey), so its blocks are black and white on any picture.
neutral = bytes([128]) * (c_stride * STAMP_ROWS // 2)


def stamp(_identity, buffer):
    ms = int(time.time() * 1000) % (1 << 32)
    code = ms.to_bytes(4, "big")
    bits = [(ms >> (31 - i)) & 1 for i in range(32)]
    check = sum(code) % 256
    bits += [(check >> (7 - i)) & 1 for i in range(8)]
    row = bytearray(y_stride)
    for i, bit in enumerate(bits):
        row[i * block:(i + 1) * block] = bytes([235 if bit else 16]) * block
    buffer.fill(0, bytes(row) * STAMP_ROWS)
    buffer.fill(u_offset, neutral)
    buffer.fill(v_offset, neutral)


def configured(_factory, media):
    media.get_element().get_by_name("stamp").connect("handoff", stamp)


factory.connect("media-configure", configured)

auth = GstRtspServer.RTSPAuth()
token = GstRtspServer.RTSPToken()
token.set_string("media.factory.role", user)
auth.add_digest(user, password, token)
auth.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST)
server.set_auth(auth)
permissions = GstRtspServer.RTSPPermissions()
permissions.add_permission_for_role(user, "media.factory.access", True)
permissions.add_permission_for_role(user, "media.factory.construct", True)
factory.set_permissions(permissions)
server.get_mount_points().add_factory("/main", factory)

clients = [0]


def connected(_server, client):
    clients[0] += 1
    n = clients[0]
    print(f"client-connected {n}", flush=True)
    client.connect("new-session", lambda _c, _s: print(f"session-new {n}", flush=True))
    client.connect("closed", lambda _c: print(f"client-closed {n}", flush=True))


server.connect("client-connected", connected)
if server.attach(None) == 0:
    print(f"error: cannot listen on 127.0.0.1:{port}", flush=True)
    sys.exit(1)
print(f"listening {server.get_bound_port()}", flush=True)
GLib.MainLoop().run()
