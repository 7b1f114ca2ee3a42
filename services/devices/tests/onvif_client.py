"""An ONVIF client nobody here wrote (PyPI onvif-zeep-async: zeep, the official WSDLs, its own
WS-Security digest) driving one simulated camera; prints what it saw as one JSON object.

    python3 onvif_client.py HOST PORT USER PASSWORD PAN TILT ZOOM

It reads the camera's clock and capabilities, lists the media profiles, moves the camera with
AbsoluteMove to (PAN, TILT, ZOOM) in the generic spaces, polls GetStatus until the move is
idle, sends it to the preset "pole", and asks for the snapshot and stream URIs. It then GETs
the snapshot URI with requests' own HTTP Digest authentication (requests comes with zeep) twice,
the second time on the same nonce, and once with a wrong password.
"""

import asyncio
import json
import sys
import time

import requests
from requests.auth import HTTPDigestAuth
from onvif import ONVIFCamera


async def main():
    host, port, user, password = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    pan, tilt, zoom = (float(v) for v in sys.argv[5:8])
    seen = {}
    camera = ONVIFCamera(host, port, user, password, adjust_time=True)
    try:
        await camera.update_xaddrs()
        seen["xaddrs"] = sorted(str(k) for k in camera.xaddrs)
        device = await camera.create_devicemgmt_service()
        clock = await device.GetSystemDateAndTime()
        seen["utc_year"] = clock.UTCDateTime.Date.Year
        media = await camera.create_media_service()
        profiles = await media.GetProfiles()
        seen["profiles"] = [p.token for p in profiles]
        token = profiles[0].token
        ptz = await camera.create_ptz_service()
        move = ptz.create_type("AbsoluteMove")
        move.ProfileToken = token
        move.Position = {"PanTilt": {"x": pan, "y": tilt}, "Zoom": {"x": zoom}}
        await ptz.AbsoluteMove(move)
        deadline = time.monotonic() + 20
        while True:
            status = await ptz.GetStatus({"ProfileToken": token})
            moving = str(status.MoveStatus.PanTilt).upper() == "MOVING"
            if not moving or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
        seen["moved_to"] = [
            status.Position.PanTilt.x,
            status.Position.PanTilt.y,
            status.Position.Zoom.x,
        ]
        seen["idle"] = not moving
        await ptz.GotoPreset({"ProfileToken": token, "PresetToken": "pole"})
        snapshot = await media.GetSnapshotUri({"ProfileToken": token})
        seen["snapshot_uri"] = snapshot.Uri
        stream = await media.GetStreamUri(
            {
                "ProfileToken": token,
                "StreamSetup": {"Stream": "RTP-Unicast", "Transport": {"Protocol": "RTSP"}},
            }
        )
        seen["stream_uri"] = stream.Uri
    finally:
        await camera.close()

    # The snapshot, behind HTTP Digest authentication.
    with requests.Session() as http:
        http.auth = HTTPDigestAuth(user, password)
        for key in ("snapshot", "snapshot_again"):
            got = http.get(seen["snapshot_uri"], timeout=10)
            body = got.content
            seen[key] = {
                "status": got.status_code,
                "type": got.headers.get("Content-Type"),
                "cache": got.headers.get("Cache-Control"),
                "bytes": len(body),
                "jpeg": body[:2] == b"\xff\xd8" and len(body) > 1000,
            }
            print(f"{key}: HTTP {got.status_code}, {len(body)} bytes", file=sys.stderr)
    refused = requests.get(
        seen["snapshot_uri"], auth=HTTPDigestAuth(user, password + "x"), timeout=10
    )
    seen["snapshot_wrong_password"] = refused.status_code

    # The same camera refuses a wrong password.
    wrong = ONVIFCamera(host, port, user, password + "x", adjust_time=True)
    try:
        await wrong.update_xaddrs()
        media = await wrong.create_media_service()
        await media.GetProfiles()
        seen["wrong_password"] = "accepted"
    except Exception as e:  # the library raises its own fault types
        seen["wrong_password"] = type(e).__name__ + ": " + str(e)
    finally:
        await wrong.close()
    print(json.dumps(seen))


asyncio.run(main())
