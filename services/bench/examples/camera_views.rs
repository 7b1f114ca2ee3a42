//! Live camera views against a node (docs/benchmarks.md, "Cameras"; scripts/bench-cameras.sh):
//! the node's CPU while operators watch `GET /api/cameras/{id}/live.mjpeg`.
//!
//! ```sh
//! camera_views HTTP_ADDR NODE_PID SECONDS CAMERAS [VIEWERS] [FARM_PID]
//! ```
//!
//! HTTP_ADDR is the node's console (`127.0.0.1:8080`), NODE_PID its process, CAMERAS a
//! comma-separated list of ONVIF camera ids, VIEWERS the size of the large cases (default: as
//! many as cameras). Signs in with the demo cookie (`POST /api/login/demo`), then for each case
//! opens its views, lets them warm up, and over SECONDS reads the node's CPU (utime + stime of
//! `/proc/NODE_PID/stat`) and counts the JPEG parts each view receives:
//!
//! - `baseline`: no view (the node idling with its actors, simulated brigades and the
//!   cameras' 10 s health checks);
//! - `1x1`: one view of one camera;
//! - `Nx N`: VIEWERS views, one per camera (cycling over CAMERAS);
//! - `Nx1`: VIEWERS views of the first camera (they share its fetch loop);
//! - `baseline_after`: no view again, at the end, to show the machine did not drift.
//!
//! Between cases it waits out the loops' linger (`PICTURE_LINGER`, 10 s) so a case pays only
//! for its own loops. With FARM_PID (the process serving the simulated cameras) it also
//! reports that process's CPU. Prints one JSON line per case: `cpu_pct` (of one core),
//! `cpu_pct_above_baseline`, `per_view_cpu_pct` (above baseline), frames/s per view (min, mean,
//! max) and the bytes the views received. The viewer is a raw HTTP/1.0 client on blocking
//! sockets (one thread a view), so the body comes unchunked until the server closes it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::json;

/// Views run this long before the window opens (the loop's first fetch signs in with Digest).
const WARM_UP: Duration = Duration::from_secs(3);
/// The node keeps a loop 10 s after its last view (`PICTURE_LINGER`); wait past it.
const COOL_DOWN: Duration = Duration::from_secs(12);
/// Linux's `USER_HZ`: the unit of utime and stime in /proc (100 on every Linux ABI we run on).
const TICKS_PER_S: f64 = 100.0;

fn usage() -> ! {
    eprintln!("usage: camera_views HTTP_ADDR NODE_PID SECONDS CAMERAS [VIEWERS] [FARM_PID]");
    std::process::exit(2);
}

/// utime + stime of a process, in seconds.
fn cpu_s(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/stat: {e}"));
    // The command name (field 2) is in parentheses and may hold spaces: count after it.
    let rest = &stat[stat.rfind(')').expect("a stat line") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of the line are 12 and 13 after the name.
    let ticks: u64 =
        fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
    ticks as f64 / TICKS_PER_S
}

/// Status line and headers of a response, read off `reader`.
fn read_head(reader: &mut impl BufRead) -> std::io::Result<(u16, Vec<(String, String)>)> {
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
    Ok((status, read_headers(reader)?))
}

/// Header lines up to the blank line (lines without a colon, such as a multipart boundary,
/// are skipped); at the end of the stream, what was read.
fn read_headers(reader: &mut impl BufRead) -> std::io::Result<Vec<(String, String)>> {
    let mut line = String::new();
    let mut headers = Vec::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            break;
        }
        let trimmed = line.trim_end();
        if trimmed.is_empty() {
            break;
        }
        if let Some((name, value)) = trimmed.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    Ok(headers)
}

/// Signs in as the demo operator; the session cookie (`name=value`).
fn demo_cookie(addr: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    write!(
        stream,
        "POST /api/login/demo HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"
    )
    .expect("send the login");
    let mut reader = BufReader::new(stream);
    let (status, headers) = read_head(&mut reader).expect("the login's answer");
    assert_eq!(
        status, 200,
        "POST /api/login/demo answered {status} (a demo node?)"
    );
    headers
        .iter()
        .find(|(name, _)| name == "set-cookie")
        .and_then(|(_, value)| value.split(';').next())
        .expect("a session cookie")
        .to_string()
}

/// One open `live.mjpeg` view, counting the frames it receives on its own thread.
struct View {
    stream: TcpStream,
    frames: Arc<AtomicU64>,
    bytes: Arc<AtomicU64>,
    thread: JoinHandle<()>,
}

impl View {
    fn open(addr: &str, cookie: &str, camera: &str) -> View {
        let mut stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        stream.set_nodelay(true).ok();
        write!(
            stream,
            "GET /api/cameras/{camera}/live.mjpeg HTTP/1.0\r\nHost: {addr}\r\nCookie: {cookie}\r\n\r\n"
        )
        .expect("send the view's request");
        let frames = Arc::new(AtomicU64::new(0));
        let bytes = Arc::new(AtomicU64::new(0));
        let reader = stream.try_clone().expect("clone the socket");
        let (f, b) = (frames.clone(), bytes.clone());
        let camera = camera.to_string();
        let thread = std::thread::spawn(move || {
            let mut reader = BufReader::with_capacity(256 * 1024, reader);
            let (status, _) = read_head(&mut reader).expect("the view's answer");
            assert_eq!(status, 200, "live.mjpeg of {camera} answered {status}");
            // Each part: `--boundary`, its headers (Content-Length), the JPEG, CRLF.
            let mut jpeg = Vec::new();
            loop {
                let Ok(headers) = read_headers(&mut reader) else {
                    return;
                };
                let Some(len) = headers
                    .iter()
                    .find(|(name, _)| name == "content-length")
                    .and_then(|(_, v)| v.parse::<usize>().ok())
                else {
                    return; // closed
                };
                jpeg.resize(len + 2, 0);
                if reader.read_exact(&mut jpeg).is_err() {
                    return;
                }
                assert_eq!(&jpeg[..2], [0xff, 0xd8], "a part of {camera} is not a JPEG");
                f.fetch_add(1, Ordering::Relaxed);
                b.fetch_add(len as u64, Ordering::Relaxed);
            }
        });
        View {
            stream,
            frames,
            bytes,
            thread,
        }
    }

    fn close(self) {
        self.stream.shutdown(Shutdown::Both).ok();
        self.thread.join().expect("a view's thread");
    }
}

/// What every case needs.
struct Bench {
    addr: String,
    cookie: String,
    node: u32,
    farm: Option<u32>,
    seconds: f64,
}

/// Runs one case: opens a view of each of `cameras`, warms up, measures over the window;
/// returns the node's CPU (% of one core).
fn case(bench: &Bench, name: &str, cameras: &[&str], baseline: Option<f64>) -> f64 {
    let Bench {
        addr,
        cookie,
        node,
        farm,
        seconds,
    } = bench;
    let (node, farm, seconds) = (*node, *farm, *seconds);
    let views: Vec<View> = cameras
        .iter()
        .map(|camera| View::open(addr, cookie, camera))
        .collect();
    std::thread::sleep(WARM_UP);
    let frames_before: Vec<u64> = views
        .iter()
        .map(|v| v.frames.load(Ordering::Relaxed))
        .collect();
    let bytes_before: u64 = views.iter().map(|v| v.bytes.load(Ordering::Relaxed)).sum();
    let (node_before, farm_before) = (cpu_s(node), farm.map(cpu_s));
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(seconds));
    let (node_after, farm_after) = (cpu_s(node), farm.map(cpu_s));
    let elapsed = started.elapsed().as_secs_f64();
    let fps: Vec<f64> = views
        .iter()
        .zip(&frames_before)
        .map(|(v, before)| (v.frames.load(Ordering::Relaxed) - before) as f64 / elapsed)
        .collect();
    let bytes: u64 = views
        .iter()
        .map(|v| v.bytes.load(Ordering::Relaxed))
        .sum::<u64>()
        - bytes_before;
    for view in views {
        view.close();
    }

    let round = |x: f64, places: i32| (x * 10f64.powi(places)).round() / 10f64.powi(places);
    let cpu_pct = (node_after - node_before) / elapsed * 100.0;
    let above = baseline.map(|b| cpu_pct - b);
    let mut distinct = cameras.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    let mut line = json!({
        "case": name,
        "views": cameras.len(),
        "cameras": distinct.len(),
        "seconds": round(elapsed, 2),
        "cpu_pct": round(cpu_pct, 2),
    });
    if let Some(above) = above {
        line["cpu_pct_above_baseline"] = json!(round(above, 2));
        if !cameras.is_empty() {
            line["per_view_cpu_pct"] = json!(round(above / cameras.len() as f64, 3));
        }
    }
    if !fps.is_empty() {
        let mean = fps.iter().sum::<f64>() / fps.len() as f64;
        line["fps_per_view"] = json!({
            "min": round(fps.iter().copied().fold(f64::INFINITY, f64::min), 2),
            "mean": round(mean, 2),
            "max": round(fps.iter().copied().fold(0.0, f64::max), 2),
        });
        line["kib_per_s"] = json!(round(bytes as f64 / elapsed / 1024.0, 1));
    }
    if let (Some(before), Some(after)) = (farm_before, farm_after) {
        line["farm_cpu_pct"] = json!(round((after - before) / elapsed * 100.0, 2));
    }
    println!("{line}");
    cpu_pct
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 4 {
        usage();
    }
    let addr = args[0].as_str();
    let node: u32 = args[1].parse().unwrap_or_else(|_| usage());
    let seconds: f64 = args[2].parse().unwrap_or_else(|_| usage());
    let cameras: Vec<&str> = args[3].split(',').filter(|c| !c.is_empty()).collect();
    if cameras.is_empty() {
        usage();
    }
    let viewers: usize = args
        .get(4)
        .map(|v| v.parse().unwrap_or_else(|_| usage()))
        .unwrap_or(cameras.len());
    let farm: Option<u32> = args.get(5).map(|v| v.parse().unwrap_or_else(|_| usage()));

    let bench = Bench {
        addr: addr.to_string(),
        cookie: demo_cookie(addr),
        node,
        farm,
        seconds,
    };
    let one = &cameras[..1];
    let each: Vec<&str> = (0..viewers).map(|i| cameras[i % cameras.len()]).collect();
    let shared: Vec<&str> = vec![cameras[0]; viewers];

    let baseline = case(&bench, "baseline", &[], None);
    case(&bench, "1x1", one, Some(baseline));
    std::thread::sleep(COOL_DOWN);
    let many = format!("{viewers}x{}", viewers.min(cameras.len()));
    case(&bench, &many, &each, Some(baseline));
    std::thread::sleep(COOL_DOWN);
    case(&bench, &format!("{viewers}x1"), &shared, Some(baseline));
    std::thread::sleep(COOL_DOWN);
    case(&bench, "baseline_after", &[], Some(baseline));
}
