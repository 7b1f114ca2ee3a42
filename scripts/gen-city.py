#!/usr/bin/env python3
"""Writes a generated city for the benchmarks: `gen-city.py FILE BUTTONS BRIGADES [SEED]`.

Buttons (each with its camera) and brigades at seeded random points within ~5 km of Plaza
Mayor, Lima; a third of the brigades on foot, motorcycle and car each, every third one armed
(non-lethal). Ids: buttons P00001.., cameras Q00001.., brigades U0001..
"""
import random
import sys

if len(sys.argv) not in (4, 5):
    sys.exit("usage: gen-city.py FILE BUTTONS BRIGADES [SEED]")
path, buttons, brigades = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(int(sys.argv[4]) if len(sys.argv) == 5 else 7)
LAT0, LON0 = -12.0464, -77.0300


def point():
    return LAT0 + rng.uniform(-0.045, 0.045), LON0 + rng.uniform(-0.045, 0.045)


with open(path, "w") as f:
    f.write(f'name = "bench-city"\nnotes = "generated: {buttons} buttons, {brigades} brigades"\n')
    for i in range(1, buttons + 1):
        lat, lon = point()
        f.write(
            f'\n[[buttons]]\nid = "P{i:05}"\nname = "corner {i}"\nlat = {lat:.5f}\nlon = {lon:.5f}\n'
            f'camera = {{ id = "Q{i:05}", pan_deg = 0.0, tilt_deg = -10.0, zoom = 3.0 }}\n'
        )
    modes = ["foot", "motorcycle", "car"]
    for i in range(1, brigades + 1):
        lat, lon = point()
        caps = '["non_lethal_armed"]' if i % 3 == 0 else "[]"
        f.write(
            f'\n[[brigades]]\nid = "U{i:04}"\ncallsign = "Unit {i}"\nmode = "{modes[i % 3]}"\n'
            f"capabilities = {caps}\nlat = {lat:.5f}\nlon = {lon:.5f}\n"
        )
