//! The simulated camera's picture: a synthetic street scene drawn for the camera's pose, one
//! baseline JPEG per snapshot. Simulation only; no real camera is asked for it.
//!
//! The camera stands in a square of colonial houses: the world is a 360° panorama in
//! azimuth and elevation (degrees), and a pose looks at it through a rectangle of
//! [`field_of_view_deg`] across ([`FOV_WIDE_DEG`] at zoom 0, [`FOV_NARROW_DEG`] at zoom 1,
//! geometric in between as optical zoom is). Pan turns the view (pan ±1 = ±180°), tilt
//! raises or lowers it (tilt ±1 = ±90°). At the pole's pose (the preset that frames the
//! button) stands the pole with its yellow box and red button, sized so that the pole's
//! preset frames it, and with `caller` someone stands beside it. Cars and pedestrians move
//! with wall time, and the on-screen display (camera name, date and time to the tenth of a
//! second, frame number) changes every frame, so no two frames are the same JPEG.

use std::sync::OnceLock;

use centinela_core::time::Timestamp;
use centinela_onvif::ptz::Pose;

pub const WIDTH: u16 = 640;
pub const HEIGHT: u16 = 360;
/// JPEG quality: what cameras' snapshots use by default.
pub const QUALITY: u8 = 70;
/// Horizontal field of view at zoom 0 and at zoom 1.
pub const FOV_WIDE_DEG: f64 = 60.0;
pub const FOV_NARROW_DEG: f64 = 6.0;

const W: usize = WIDTH as usize;
const H: usize = HEIGHT as usize;

/// What one frame shows.
#[derive(Clone, Debug)]
pub struct View {
    /// Where the camera points.
    pub pose: Pose,
    /// The pose that frames the button's pole.
    pub pole: Pose,
    /// Whether someone stands at the button.
    pub caller: bool,
    /// Wall time of the frame.
    pub at: Timestamp,
    /// The frame's number, shown on screen.
    pub frame: u64,
    /// The camera's name, shown on screen.
    pub label: String,
}

/// The horizontal field of view at `zoom`, in degrees.
pub fn field_of_view_deg(zoom: f64) -> f64 {
    FOV_WIDE_DEG * (FOV_NARROW_DEG / FOV_WIDE_DEG).powf(zoom.clamp(0.0, 1.0))
}

/// The frame `view` shows, as a baseline JPEG of [`WIDTH`] × [`HEIGHT`].
pub fn render(view: &View) -> Vec<u8> {
    let mut canvas = Canvas::new(view.pose);
    canvas.background();
    canvas.traffic(view.at);
    canvas.pole(view.pole, view.caller, view.at);
    canvas.osd(view);
    canvas.encode()
}

type Rgb = [u8; 3];

/// Wraps an angle in degrees into [-180, 180).
fn wrap(deg: f64) -> f64 {
    (deg + 180.0).rem_euclid(360.0) - 180.0
}

/// The frame being drawn, and how world angles map onto it.
struct Canvas {
    pixels: Vec<u8>,
    /// Azimuth and elevation at the centre of the frame, degrees.
    az: f64,
    el: f64,
    /// Degrees per pixel (square pixels).
    step: f64,
}

impl Canvas {
    fn new(pose: Pose) -> Self {
        let pose = pose.clamped();
        Self {
            pixels: vec![0; W * H * 3],
            az: pose.pan * 180.0,
            el: pose.tilt * 90.0,
            step: field_of_view_deg(pose.zoom) / W as f64,
        }
    }

    /// The pixel column of azimuth `az` (may be off the frame).
    fn x(&self, az: f64) -> f64 {
        W as f64 / 2.0 + wrap(az - self.az) / self.step
    }

    /// The pixel row of elevation `el` (may be off the frame).
    fn y(&self, el: f64) -> f64 {
        H as f64 / 2.0 - (el - self.el) / self.step
    }

    fn put(&mut self, x: usize, y: usize, c: Rgb) {
        let i = (y * W + x) * 3;
        self.pixels[i..i + 3].copy_from_slice(&c);
    }

    /// Fills pixels `[x0, x1) × [y0, y1)`, clipped to the frame.
    fn fill_px(&mut self, x0: f64, x1: f64, y0: f64, y1: f64, c: Rgb) {
        let clip = |v: f64, max: usize| v.round().clamp(0.0, max as f64) as usize;
        let (x0, x1) = (clip(x0, W), clip(x1, W));
        let (y0, y1) = (clip(y0, H), clip(y1, H));
        for y in y0..y1 {
            for x in x0..x1 {
                self.put(x, y, c);
            }
        }
    }

    /// Fills the world rectangle centred at azimuth `az`, `width` degrees wide, from
    /// elevation `el0` up to `el1`.
    fn rect(&mut self, az: f64, width: f64, el0: f64, el1: f64, c: Rgb) {
        let x = self.x(az);
        let half = width / 2.0 / self.step;
        // At least one pixel wide, so thin things stay visible from afar.
        let half = half.max(0.5);
        self.fill_px(x - half, x + half, self.y(el1), self.y(el0), c);
    }

    /// Fills the world disc of `radius` degrees at (`az`, `el`).
    fn disc(&mut self, az: f64, el: f64, radius: f64, c: Rgb) {
        let (cx, cy) = (self.x(az), self.y(el));
        let r = (radius / self.step).max(0.7);
        let y0 = (cy - r).floor().max(0.0) as usize;
        let y1 = ((cy + r).ceil().max(0.0) as usize).min(H);
        let x0 = (cx - r).floor().max(0.0) as usize;
        let x1 = ((cx + r).ceil().max(0.0) as usize).min(W);
        for y in y0..y1 {
            for x in x0..x1 {
                let (dx, dy) = (x as f64 + 0.5 - cx, y as f64 + 0.5 - cy);
                if dx * dx + dy * dy <= r * r {
                    self.put(x, y, c);
                }
            }
        }
    }

    /// Whether a world object at `az` spanning `half_width` degrees either side can be seen.
    fn in_view(&self, az: f64, half_width: f64) -> bool {
        wrap(az - self.az).abs() - half_width < (W as f64 / 2.0 + 2.0) * self.step
    }

    /// Sky, houses, pavement and street.
    fn background(&mut self) {
        let houses = houses();
        // Per column: the house there and where across it.
        let columns: Vec<(usize, f64)> = (0..W)
            .map(|x| {
                let az =
                    (self.az + (x as f64 + 0.5 - W as f64 / 2.0) * self.step).rem_euclid(360.0);
                let i = houses
                    .partition_point(|h| h.start + h.width <= az)
                    .min(houses.len() - 1);
                let h = &houses[i];
                (i, ((az - h.start) / h.width).clamp(0.0, 1.0))
            })
            .collect();
        for y in 0..H {
            let el = self.el + (H as f64 / 2.0 - y as f64 - 0.5) * self.step;
            let row = y * W * 3;
            if el < PAVEMENT_EL {
                // Street and kerb: the same for every column but for the lane marks.
                let colour = if el > KERB_EL {
                    [150, 145, 135]
                } else {
                    let shade = (62.0 + (el + 90.0) * 0.1) as u8;
                    [shade, shade, shade + 3]
                };
                let lane = (LANE_EL - 0.5..LANE_EL + 0.5).contains(&el);
                for x in 0..W {
                    let c = if lane {
                        let az = self.az + (x as f64 + 0.5 - W as f64 / 2.0) * self.step;
                        if az.rem_euclid(12.0) < 6.0 {
                            [225, 210, 120]
                        } else {
                            colour
                        }
                    } else {
                        colour
                    };
                    self.pixels[row + x * 3..row + x * 3 + 3].copy_from_slice(&c);
                }
                continue;
            }
            if el < BASE_EL {
                // Pavement, in flagstones.
                for x in 0..W {
                    let az = self.az + (x as f64 + 0.5 - W as f64 / 2.0) * self.step;
                    let joint =
                        az.rem_euclid(2.5) < 0.12 || (el - PAVEMENT_EL).rem_euclid(1.6) < 0.12;
                    let c = if joint {
                        [140, 132, 120]
                    } else {
                        [190, 180, 162]
                    };
                    self.pixels[row + x * 3..row + x * 3 + 3].copy_from_slice(&c);
                }
                continue;
            }
            let sky = sky(el);
            for (x, &(i, u)) in columns.iter().enumerate() {
                let house = &houses[i];
                let c = if el >= house.top {
                    sky
                } else {
                    house.facade(u, el)
                };
                self.pixels[row + x * 3..row + x * 3 + 3].copy_from_slice(&c);
            }
        }
    }

    /// Cars along the street and pedestrians on the pavement, moving with wall time.
    fn traffic(&mut self, at: Timestamp) {
        for (i, (_, speed, colour)) in CARS.iter().enumerate() {
            // The two directions in two lanes.
            let base = if *speed > 0.0 {
                LANE_EL - 4.5
            } else {
                LANE_EL + 1.0
            };
            self.car(car_azimuth(i, at), base, *colour);
        }
        let t = (at.as_millis() % 86_400_000) as f64 / 1000.0;
        for (offset, speed, colour) in WALKERS {
            let az = (offset + speed * t).rem_euclid(360.0);
            // A stride: the legs swing as they walk.
            let stride = (t * speed.abs() * 3.0).sin() * 0.35;
            self.person(az, BASE_EL - 3.0, 5.0, colour, stride, false);
        }
    }

    fn car(&mut self, az: f64, base: f64, colour: Rgb) {
        if !self.in_view(az, 5.0) {
            return;
        }
        let dark = [25, 25, 28];
        self.rect(az, 9.0, base + 0.9, base + 2.6, colour);
        self.rect(az, 5.0, base + 2.6, base + 4.0, colour);
        self.rect(az - 1.2, 2.0, base + 2.8, base + 3.8, [120, 160, 190]);
        self.rect(az + 1.2, 2.0, base + 2.8, base + 3.8, [120, 160, 190]);
        self.disc(az - 2.9, base + 0.9, 0.9, dark);
        self.disc(az + 2.9, base + 0.9, 0.9, dark);
    }

    /// A person `height` degrees tall standing at (`az`, `feet`): head, body, arms, legs.
    /// `stride` swings the legs; `reaching` raises the left arm towards the button.
    fn person(&mut self, az: f64, feet: f64, height: f64, shirt: Rgb, stride: f64, reaching: bool) {
        if !self.in_view(az, height) {
            return;
        }
        let s = height;
        let skin = [205, 160, 120];
        let trousers = [45, 50, 70];
        // Legs.
        self.rect(
            az - 0.07 * s + stride * 0.1 * s,
            0.08 * s,
            feet,
            feet + 0.45 * s,
            trousers,
        );
        self.rect(
            az + 0.07 * s - stride * 0.1 * s,
            0.08 * s,
            feet,
            feet + 0.45 * s,
            trousers,
        );
        // Body.
        self.rect(az, 0.26 * s, feet + 0.43 * s, feet + 0.82 * s, shirt);
        // Arms: the right one down, the left one down or reaching out level with the chest.
        self.rect(
            az + 0.17 * s,
            0.07 * s,
            feet + 0.5 * s,
            feet + 0.8 * s,
            shirt,
        );
        if reaching {
            self.rect(
                az - 0.27 * s,
                0.34 * s,
                feet + 0.72 * s,
                feet + 0.79 * s,
                shirt,
            );
            self.disc(az - 0.45 * s, feet + 0.755 * s, 0.04 * s, skin);
        } else {
            self.rect(
                az - 0.17 * s,
                0.07 * s,
                feet + 0.5 * s,
                feet + 0.8 * s,
                shirt,
            );
        }
        // Head.
        self.disc(az, feet + 0.91 * s, 0.09 * s, skin);
        self.rect(az, 0.2 * s, feet + 0.96 * s, feet + 1.0 * s, [50, 35, 25]);
    }

    /// The button's pole: grey post, yellow box, red button, a lamp on top; the caller
    /// beside it.
    fn pole(&mut self, pole: Pose, caller: bool, at: Timestamp) {
        let pole = pole.clamped();
        let az = pole.pan * 180.0;
        let el = pole.tilt * 90.0;
        // Sized so that the pole's preset frames it: its field of view is the unit.
        let s = field_of_view_deg(pole.zoom);
        if !self.in_view(az, 0.4 * s) {
            return;
        }
        let feet = el - 0.26 * s;
        self.rect(az, 0.03 * s, feet, el + 0.2 * s, [115, 118, 122]);
        self.rect(
            az + 0.005 * s,
            0.008 * s,
            feet,
            el + 0.2 * s,
            [160, 163, 168],
        );
        // The box, outlined, with the button and a label strip.
        self.rect(az, 0.1 * s, el - 0.075 * s, el + 0.075 * s, [30, 30, 30]);
        self.rect(az, 0.09 * s, el - 0.07 * s, el + 0.07 * s, [245, 200, 20]);
        self.rect(az, 0.07 * s, el + 0.035 * s, el + 0.055 * s, [30, 30, 30]);
        self.disc(az, el - 0.01 * s, 0.03 * s, [90, 10, 10]);
        self.disc(az, el - 0.01 * s, 0.025 * s, [220, 25, 25]);
        // The lamp: blinks red while someone is there.
        let lit = caller && (at.as_millis() / 500).is_multiple_of(2);
        let lamp = if lit { [255, 60, 40] } else { [90, 90, 100] };
        self.disc(az, el + 0.21 * s, 0.02 * s, lamp);
        if caller {
            self.person(az + 0.2 * s, feet, 0.4 * s, [200, 90, 30], 0.0, true);
        }
    }

    /// The on-screen display: date and time top left, frame number top right, the camera's
    /// name bottom left.
    fn osd(&mut self, view: &View) {
        let t = view.at.civil_utc();
        let tenths = (view.at.as_millis() % 1000) / 100;
        let clock = format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{tenths}",
            t.year, t.month, t.day, t.hour, t.minute, t.second
        );
        self.text(8, 8, &clock);
        let frame = format!("#{:06}", view.frame % 1_000_000);
        let width = frame.len() * GLYPH_ADVANCE;
        self.text(W - 8 - width, 8, &frame);
        let label: String = view.label.chars().take((W - 16) / GLYPH_ADVANCE).collect();
        self.text(8, H - 8 - 7 * SCALE, &label);
    }

    /// `text` in the built-in font at pixel (`x`, `y`), white on a dark shadow.
    fn text(&mut self, x: usize, y: usize, text: &str) {
        for (i, c) in text.chars().enumerate() {
            let rows = glyph(c);
            let gx = x + i * GLYPH_ADVANCE;
            for (shadow, colour) in [(1, [20, 20, 20]), (0, [255, 255, 255])] {
                for (r, bits) in rows.iter().enumerate() {
                    for col in 0..5 {
                        if bits & (0x10 >> col) == 0 {
                            continue;
                        }
                        for dy in 0..SCALE {
                            for dx in 0..SCALE {
                                let px = gx + col * SCALE + dx + shadow;
                                let py = y + r * SCALE + dy + shadow;
                                if px < W && py < H {
                                    self.put(px, py, colour);
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    fn encode(self) -> Vec<u8> {
        let mut jpeg = Vec::with_capacity(48 * 1024);
        jpeg_encoder::Encoder::new(&mut jpeg, QUALITY)
            .encode(&self.pixels, WIDTH, HEIGHT, jpeg_encoder::ColorType::Rgb)
            .expect("the frame's size matches its pixels");
        jpeg
    }
}

/// Where the world's horizontal bands start, in degrees of elevation: the houses stand on the
/// pavement, the pavement ends at the kerb, then the street.
/// Set for the presets cameras are installed with (tilted 10° to 20° down at a pole on the
/// pavement, houses behind it).
const BASE_EL: f64 = -6.0;
const PAVEMENT_EL: f64 = -19.0;
const KERB_EL: f64 = -20.0;
const LANE_EL: f64 = -30.0;

/// The cars: azimuth at time 0, speed (degrees a second; the sign is the lane), colour.
const CARS: [(f64, f64, Rgb); 4] = [
    (0.0, 9.0, [200, 30, 30]),
    (130.0, 6.5, [30, 80, 180]),
    (250.0, -7.5, [240, 240, 235]),
    (40.0, -5.0, [40, 140, 70]),
];
/// The pedestrians, likewise.
const WALKERS: [(f64, f64, Rgb); 5] = [
    (20.0, 1.3, [60, 60, 140]),
    (95.0, -1.1, [150, 40, 60]),
    (170.0, 0.9, [40, 110, 60]),
    (240.0, -1.4, [110, 80, 40]),
    (310.0, 1.2, [90, 90, 90]),
];

/// Where car `i` is at `at`, degrees of azimuth.
fn car_azimuth(i: usize, at: Timestamp) -> f64 {
    let (offset, speed, _) = CARS[i];
    // Wall time modulo a day keeps the product exact enough.
    let t = (at.as_millis() % 86_400_000) as f64 / 1000.0;
    (offset + speed * t).rem_euclid(360.0)
}

fn sky(el: f64) -> Rgb {
    let f = (el / 50.0).clamp(0.0, 1.0);
    let mix = |a: f64, b: f64| (a + (b - a) * f) as u8;
    [mix(185.0, 55.0), mix(215.0, 115.0), mix(240.0, 200.0)]
}

/// One house of the square.
struct House {
    /// Azimuth of its left edge and its width, degrees.
    start: f64,
    width: f64,
    /// Elevation of its roof line.
    top: f64,
    wall: Rgb,
    trim: Rgb,
    shutters: Rgb,
    floors: u32,
    windows: u32,
    balconies: bool,
}

impl House {
    /// The facade at `u` across (0 to 1) and elevation `el`.
    fn facade(&self, u: f64, el: f64) -> Rgb {
        let v = (el - BASE_EL) / (self.top - BASE_EL);
        let shade = |c: Rgb, k: f64| {
            [
                (c[0] as f64 * k) as u8,
                (c[1] as f64 * k) as u8,
                (c[2] as f64 * k) as u8,
            ]
        };
        if !(0.012..=0.988).contains(&u) {
            return shade(self.wall, 0.6);
        }
        if v > 0.93 {
            // The cornice.
            return if v > 0.965 {
                self.trim
            } else {
                shade(self.trim, 0.8)
            };
        }
        if v < 0.04 {
            return shade(self.wall, 0.7);
        }
        let f = v / 0.93 * self.floors as f64;
        let floor = f as u32;
        let fv = f.fract();
        let w = u * self.windows as f64;
        let column = w as u32;
        let wu = w.fract();
        let door = floor == 0 && column == self.windows / 2;
        if self.balconies && floor > 0 && (0.18..0.82).contains(&wu) && (0.24..0.5).contains(&fv) {
            // A wrought-iron balcony across the lower part of the window: the slab, the
            // handrail, and bars with the window or wall behind them.
            if fv < 0.28 {
                return shade(self.trim, 0.75);
            }
            if fv > 0.46 || (wu * 24.0).fract() < 0.3 {
                return [30, 30, 36];
            }
        }
        let (top, bottom) = if door { (0.8, 0.0) } else { (0.82, 0.3) };
        if (0.3..0.7).contains(&wu) && fv < top && fv >= bottom {
            // The opening: glass, or the door's wood; shutters open either side.
            return if door {
                if (0.49..0.51).contains(&wu) {
                    [60, 35, 20]
                } else {
                    [110, 65, 35]
                }
            } else if (0.3..0.35).contains(&wu) || (0.65..0.7).contains(&wu) {
                self.shutters
            } else if fv > 0.78 || (0.49..0.51).contains(&wu) {
                self.trim
            } else {
                [45, 60, 75]
            };
        }
        if (0.26..0.74).contains(&wu) && fv < top + 0.06 && fv >= bottom - 0.04 {
            return self.trim; // the window's frame
        }
        self.wall
    }
}

/// The square's houses, all around (built once).
fn houses() -> &'static [House] {
    static HOUSES: OnceLock<Vec<House>> = OnceLock::new();
    HOUSES.get_or_init(|| {
        const WALLS: [Rgb; 9] = [
            [214, 160, 72],
            [192, 98, 62],
            [118, 156, 204],
            [226, 156, 168],
            [238, 206, 96],
            [236, 230, 214],
            [126, 176, 126],
            [172, 144, 196],
            [232, 146, 66],
        ];
        const SHUTTERS: [Rgb; 4] = [[40, 90, 60], [110, 60, 30], [40, 60, 110], [150, 40, 40]];
        let mut seed = 0x5eed_c0de_u64;
        let mut next = move || {
            // splitmix64: a fixed street, the same every run.
            seed = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = seed;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        let mut houses = Vec::new();
        let mut start = 0.0;
        let mut previous = usize::MAX;
        while start < 360.0 {
            let width = (8.0 + (next() % 13) as f64).min(360.0 - start);
            let mut wall = (next() % WALLS.len() as u64) as usize;
            if wall == previous {
                wall = (wall + 1) % WALLS.len();
            }
            previous = wall;
            let floors = 2 + (next() % 2) as u32;
            houses.push(House {
                start,
                width,
                top: floors as f64 * 6.5 + (next() % 4) as f64,
                wall: WALLS[wall],
                trim: [245, 240, 228],
                shutters: SHUTTERS[(next() % SHUTTERS.len() as u64) as usize],
                floors,
                windows: ((width / 3.5) as u32).max(2),
                balconies: next() % 3 != 0,
            });
            start += width;
        }
        houses
    })
}

/// The built-in font: 5 × 7 glyphs, drawn at [`SCALE`].
const SCALE: usize = 2;
const GLYPH_ADVANCE: usize = 6 * SCALE;

fn glyph(c: char) -> [u8; 7] {
    match c.to_ascii_uppercase() {
        '0' => [0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E],
        '1' => [0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E],
        '2' => [0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F],
        '3' => [0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E],
        '4' => [0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02],
        '5' => [0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E],
        '6' => [0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E],
        '7' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
        '8' => [0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E],
        '9' => [0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C],
        'A' => [0x0E, 0x11, 0x11, 0x11, 0x1F, 0x11, 0x11],
        'B' => [0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E],
        'C' => [0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E],
        'D' => [0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C],
        'E' => [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F],
        'F' => [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10],
        'G' => [0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F],
        'H' => [0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11],
        'I' => [0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E],
        'J' => [0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C],
        'K' => [0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11],
        'L' => [0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F],
        'M' => [0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11],
        'N' => [0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11],
        'O' => [0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E],
        'P' => [0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10],
        'Q' => [0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D],
        'R' => [0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11],
        'S' => [0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E],
        'T' => [0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04],
        'U' => [0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E],
        'V' => [0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04],
        'W' => [0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A],
        'X' => [0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11],
        'Y' => [0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04],
        'Z' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F],
        ' ' => [0; 7],
        '-' => [0, 0, 0, 0x1F, 0, 0, 0],
        ':' => [0, 0x0C, 0x0C, 0, 0x0C, 0x0C, 0],
        '.' => [0, 0, 0, 0, 0, 0x0C, 0x0C],
        '/' => [0, 0x01, 0x02, 0x04, 0x08, 0x10, 0],
        '#' => [0x0A, 0x0A, 0x1F, 0x0A, 0x1F, 0x0A, 0x0A],
        '_' => [0, 0, 0, 0, 0, 0, 0x1F],
        _ => [0x0E, 0x11, 0x01, 0x02, 0x04, 0x00, 0x04], // '?'
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Timestamp = Timestamp::from_millis(1_795_817_112_000);
    /// As scenarios' presets are: 90° right, 12° down, 4x.
    const POLE: Pose = Pose {
        pan: 0.5,
        tilt: -12.0 / 90.0,
        zoom: 3.0 / 39.0,
    };

    fn view(pose: Pose, caller: bool, at: Timestamp) -> View {
        View {
            pose,
            pole: POLE,
            caller,
            at,
            frame: 42,
            label: "CAM-07 Plaza de Armas".into(),
        }
    }

    /// Decodes a frame to RGB, checking it is the JPEG it should be.
    fn decode(jpeg: &[u8]) -> Vec<u8> {
        assert_eq!(&jpeg[..2], &[0xFF, 0xD8], "SOI");
        assert_eq!(&jpeg[jpeg.len() - 2..], &[0xFF, 0xD9], "EOI");
        let mut decoder = jpeg_decoder::Decoder::new(jpeg);
        let pixels = decoder.decode().expect("a decodable JPEG");
        let info = decoder.info().unwrap();
        assert_eq!((info.width, info.height), (WIDTH, HEIGHT));
        assert_eq!(info.pixel_format, jpeg_decoder::PixelFormat::RGB24);
        assert_eq!(
            info.coding_process,
            jpeg_decoder::CodingProcess::DctSequential,
            "baseline"
        );
        pixels
    }

    /// Mean absolute difference per channel over the pixel rectangle.
    fn difference(
        a: &[u8],
        b: &[u8],
        xs: std::ops::Range<usize>,
        ys: std::ops::Range<usize>,
    ) -> f64 {
        let mut sum = 0u64;
        let mut n = 0u64;
        for y in ys {
            for x in xs.clone() {
                for ch in 0..3 {
                    let i = (y * W + x) * 3 + ch;
                    sum += u64::from(a[i].abs_diff(b[i]));
                    n += 1;
                }
            }
        }
        sum as f64 / n as f64
    }

    #[test]
    fn a_frame_is_a_baseline_jpeg_of_the_right_size() {
        let jpeg = render(&view(POLE, false, T0));
        assert!(
            jpeg.len() > 10_000,
            "{} bytes: a scene, not a blank",
            jpeg.len()
        );
        let pixels = decode(&jpeg);
        // The box is yellow in the centre of the pole's preset, the button red below it.
        let at = |x: usize, y: usize| {
            let i = (y * W + x) * 3;
            [pixels[i], pixels[i + 1], pixels[i + 2]]
        };
        let [r, g, b] = at(W / 2 - 20, H / 2 - 14);
        assert!(
            r > 200 && g > 150 && b < 90,
            "yellow box, got {:?}",
            [r, g, b]
        );
        let [r, g, b] = at(W / 2, H / 2 + 5);
        assert!(
            r > 170 && g < 90 && b < 90,
            "red button, got {:?}",
            [r, g, b]
        );
    }

    #[test]
    fn the_caller_stands_beside_the_pole() {
        let empty = decode(&render(&view(POLE, false, T0)));
        let there = decode(&render(&view(POLE, true, T0)));
        // Right of the pole, where the caller stands: changed.
        let beside = difference(
            &empty,
            &there,
            W / 2 + 40..W / 2 + 200,
            H / 2 - 100..H / 2 + 150,
        );
        assert!(beside > 10.0, "the caller is drawn: {beside}");
        // The far left of the frame: the same scene.
        let away = difference(&empty, &there, 0..W / 4, 40..H - 40);
        assert!(away < 1.0, "nothing else changes: {away}");
        // From the other side of the square, the pole and its caller are out of sight.
        let behind = Pose { pan: -0.5, ..POLE };
        let a = decode(&render(&view(behind, false, T0)));
        let b = decode(&render(&view(behind, true, T0)));
        assert!(difference(&a, &b, 0..W, 0..H) < 0.5);
    }

    #[test]
    fn turning_and_zooming_change_the_picture() {
        let base = decode(&render(&view(POLE, false, T0)));
        let turned = Pose {
            pan: POLE.pan + 0.5,
            ..POLE
        };
        let other = decode(&render(&view(turned, false, T0)));
        let d = difference(&base, &other, 0..W, 30..H - 30);
        assert!(d > 15.0, "90° away is another picture: {d}");
        let wide = Pose { zoom: 0.0, ..POLE };
        let zoomed_out = decode(&render(&view(wide, false, T0)));
        assert!(difference(&base, &zoomed_out, 0..W, 30..H - 30) > 15.0);
        assert!((field_of_view_deg(0.0) - 60.0).abs() < 1e-9);
        assert!((field_of_view_deg(1.0) - 6.0).abs() < 1e-9);
    }

    #[test]
    fn consecutive_frames_differ() {
        // Looking down the street at the first car.
        let wide = Pose {
            pan: car_azimuth(0, T0) / 180.0,
            tilt: -0.15,
            zoom: 0.0,
        };
        let wide = Pose {
            pan: if wide.pan > 1.0 {
                wide.pan - 2.0
            } else {
                wide.pan
            },
            ..wide
        };
        let a = render(&view(wide, false, T0));
        let b = render(&view(
            wide,
            false,
            T0.saturating_add(std::time::Duration::from_millis(300)),
        ));
        assert_ne!(a, b);
        // Away from the on-screen display too: the traffic moves.
        let (a, b) = (decode(&a), decode(&b));
        assert!(difference(&a, &b, 0..W, 40..H - 40) > 0.05);
        // The same instant renders the same frame.
        assert_eq!(render(&view(wide, true, T0)), render(&view(wide, true, T0)));
    }

    #[test]
    fn glyphs_are_distinct() {
        let chars: Vec<char> = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ-:./#_"
            .chars()
            .collect();
        for (i, a) in chars.iter().enumerate() {
            for b in &chars[i + 1..] {
                assert_ne!(glyph(*a), glyph(*b), "{a} and {b}");
            }
        }
    }

    /// Not asserted: prints what a frame costs (run with --release --nocapture).
    #[test]
    fn render_time() {
        let frames = 30;
        let started = std::time::Instant::now();
        let mut bytes = 0;
        for i in 0..frames {
            let pose = Pose {
                pan: -1.0 + 2.0 * i as f64 / frames as f64,
                tilt: -0.1,
                zoom: (i % 5) as f64 / 5.0,
            };
            bytes += render(&view(
                pose,
                i % 2 == 0,
                T0.saturating_add(std::time::Duration::from_millis(i * 200)),
            ))
            .len();
        }
        let each = started.elapsed() / frames as u32;
        // To look at them: PICTURE_DUMP=DIR writes a few frames there.
        if let Some(dir) = std::env::var_os("PICTURE_DUMP") {
            let dir = std::path::PathBuf::from(dir);
            let wide = Pose { zoom: 0.0, ..POLE };
            let left = Pose {
                pan: -0.1,
                tilt: 0.05,
                zoom: 0.0,
            };
            for (name, pose, caller) in [
                ("pole", POLE, true),
                ("wide", wide, true),
                ("left", left, false),
            ] {
                let jpeg = render(&view(pose, caller, T0));
                let mut ppm = format!("P6 {W} {H} 255\n").into_bytes();
                ppm.extend(decode(&jpeg));
                std::fs::write(dir.join(format!("{name}.jpg")), jpeg).unwrap();
                std::fs::write(dir.join(format!("{name}.ppm")), ppm).unwrap();
            }
        }
        println!(
            "render: {each:?} per frame, {} bytes on average",
            bytes / frames as usize
        );
    }
}
