//! A SIP user agent that is not ours: Debian's `sipp` (package `sip-tester`), running a
//! scenario file the test writes, from a temp dir, against a gateway address; killed when
//! dropped, or when it outlives its deadline. Its exit status says whether every call went
//! as the scenario expects; its error trace and screen go into the failure message.
//!
//! Without `sipp` [`Sipp::available`] is false and a test skips; under CI it fails loudly
//! instead (scripts/test.sh installs `sip-tester`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

/// A button's call: challenged, authenticated (`-au`/`-ap`), answered, playing `[wav]` for
/// `[talk_ms]` (both written in by the test: sipp substitutes keywords in messages only),
/// then hung up. `-key button B01` names the button.
pub const CALL: &str = include_str!("call.xml");
/// A button's call that an operator answers and hangs up: as [`CALL`], but it plays `[wav]`
/// (written in) until the node's BYE, which it answers; sipp exits 0 only once that BYE came.
pub const HUNG_UP: &str = include_str!("hung_up.xml");
/// A call refused after the challenge with `[expect]` (written in): 403, 404.
pub const REFUSED: &str = include_str!("refused.xml");
/// Many buttons at once (`F<call number>`), unauthenticated: each held for `[hold_ms]`
/// (written in) or refused with 503.
pub const FLOOD: &str = include_str!("flood.xml");
/// An INVITE whose From is not a SIP address: 400 expected.
pub const MALFORMED: &str = include_str!("malformed.xml");

const HOW: &str = "apt-get install sip-tester (scripts/test.sh does)";

/// Whether `sipp` is installed; `false` (saying so) outside CI, a panic under CI.
pub fn available() -> bool {
    let found = std::process::Command::new("sipp")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !found {
        if std::env::var_os("CI").is_some() {
            panic!("CI: this test needs sipp and it is missing: {HOW}");
        }
        eprintln!("SKIPPED: no sipp: {HOW}");
    }
    found
}

/// One scenario run's workspace: its files live in a temp dir.
pub struct Sipp {
    dir: tempfile::TempDir,
}

/// How a run ended.
#[derive(Debug)]
pub struct Run {
    /// sipp's exit code: 0 when every call went as scripted, 1 when some did not.
    pub code: Option<i32>,
    /// The error trace and the last screen, for messages.
    pub report: String,
}

impl Run {
    pub fn succeeded(&self) -> bool {
        self.code == Some(0)
    }
}

impl Default for Sipp {
    fn default() -> Self {
        Self::new()
    }
}

impl Sipp {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("a temp dir for sipp"),
        }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `contents` as `name` in the run's directory; its path.
    pub fn file(&self, name: &str, contents: &[u8]) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, contents).expect("a sipp file");
        path
    }

    /// Runs `scenario` (XML) against `target` over UDP (`transport` `u1`) or TCP (`t1`)
    /// with `args` added (`-m`, `-s`, `-au`, `-ap`...), until sipp exits or `deadline`
    /// passes (then it is killed and the run fails).
    pub async fn run(
        &self,
        scenario: &str,
        target: SocketAddr,
        transport: &str,
        args: &[&str],
        deadline: Duration,
    ) -> Run {
        let scenario_path = self.file("scenario.xml", scenario.as_bytes());
        let media_port = free_udp_port();
        let mut command = Command::new("sipp");
        command
            .current_dir(self.dir.path())
            .arg(target.to_string())
            .args(["-sf", scenario_path.to_str().unwrap()])
            .args(["-i", &target.ip().to_string()])
            .args(["-mi", &target.ip().to_string()])
            .args(["-mp", &media_port.to_string()])
            .args(["-t", transport])
            .args(["-nostdin", "-trace_err", "-trace_screen"])
            .args(["-timeout", &format!("{}s", deadline.as_secs().max(1))])
            .args(["-timeout_error"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let child = command.spawn().expect("sipp starts");
        let waited =
            tokio::time::timeout(deadline + Duration::from_secs(10), child.wait_with_output())
                .await;
        let (code, stderr) = match waited {
            Ok(Ok(output)) => (
                output.status.code(),
                String::from_utf8_lossy(&output.stderr).into_owned(),
            ),
            Ok(Err(e)) => (None, format!("sipp: {e}")),
            Err(_) => (None, "sipp outlived its deadline (killed)".into()),
        };
        Run {
            code,
            report: format!("{stderr}\n{}", self.traces()),
        }
    }

    /// The error and screen traces sipp wrote, joined.
    fn traces(&self) -> String {
        let mut out = String::new();
        let Ok(entries) = std::fs::read_dir(self.dir.path()) else {
            return out;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with("_errors.log") || name.ends_with("_screen.log") {
                let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
                let tail: String = text
                    .chars()
                    .rev()
                    .take(4000)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect();
                out.push_str(&format!("--- {name}\n{tail}\n"));
            }
        }
        out
    }
}

/// A UDP port free a moment ago (sipp's media port must be given).
fn free_udp_port() -> u16 {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("a free UDP port");
    socket.local_addr().expect("its address").port()
}

/// A mono 8 kHz µ-law WAV of `seconds` of a voice-like tone (two partials, a slow
/// amplitude swell), as intercoms and sipp's `rtp_stream` play.
pub fn ulaw_wav(seconds: u32) -> Vec<u8> {
    let samples = 8000 * seconds as usize;
    let mut data = Vec::with_capacity(samples);
    for n in 0..samples {
        let t = n as f64 / 8000.0;
        let swell = 0.6 + 0.4 * (2.0 * std::f64::consts::PI * 3.0 * t).sin();
        let value = swell
            * (0.5 * (2.0 * std::f64::consts::PI * 220.0 * t).sin()
                + 0.3 * (2.0 * std::f64::consts::PI * 660.0 * t).sin());
        data.push(linear_to_ulaw((value * 16000.0) as i16));
    }
    let mut wav = Vec::with_capacity(58 + data.len());
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&((50 + data.len()) as u32).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    wav.extend_from_slice(&18u32.to_le_bytes());
    wav.extend_from_slice(&7u16.to_le_bytes()); // WAVE_FORMAT_MULAW
    wav.extend_from_slice(&1u16.to_le_bytes()); // mono
    wav.extend_from_slice(&8000u32.to_le_bytes());
    wav.extend_from_slice(&8000u32.to_le_bytes()); // bytes per second
    wav.extend_from_slice(&1u16.to_le_bytes()); // block align
    wav.extend_from_slice(&8u16.to_le_bytes()); // bits per sample
    wav.extend_from_slice(&0u16.to_le_bytes()); // no extension
    wav.extend_from_slice(b"fact");
    wav.extend_from_slice(&4u32.to_le_bytes());
    wav.extend_from_slice(&(data.len() as u32).to_le_bytes());
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&(data.len() as u32).to_le_bytes());
    wav.extend_from_slice(&data);
    wav
}

/// G.711 µ-law of one 16-bit sample (ITU-T G.711's segment encoding).
fn linear_to_ulaw(sample: i16) -> u8 {
    const BIAS: i32 = 0x84;
    const CLIP: i32 = 32635;
    let mut value = sample as i32;
    let sign = if value < 0 { 0x80 } else { 0 };
    if value < 0 {
        value = -value;
    }
    let value = value.min(CLIP) + BIAS;
    let exponent = (7 - (value.leading_zeros() as i32 - 17)).clamp(0, 7);
    let mantissa = (value >> (exponent + 3)) & 0x0F;
    !(sign | (exponent << 4) | mantissa) as u8
}

/// Runs [`HUNG_UP`] once in the background: `button` calls `target` over `transport`,
/// plays a generated voice-like WAV on a loop until the node hangs up, and answers its BYE.
/// `deadline`: how long it may wait for that BYE.
pub fn spawn_call_hung_up_by_node(
    target: SocketAddr,
    transport: &str,
    button: &str,
    password: &str,
    deadline: Duration,
) -> tokio::task::JoinHandle<Run> {
    let transport = transport.to_string();
    let args = [
        "-m", "1", "-key", "button", button, "-au", button, "-ap", password,
    ]
    .map(String::from);
    tokio::spawn(async move {
        let sipp = Sipp::new();
        let wav = sipp.file("voice.wav", &ulaw_wav(2));
        let scenario = HUNG_UP.replace("[wav]", wav.to_str().unwrap());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        sipp.run(&scenario, target, &transport, &args, deadline)
            .await
    })
}

/// Runs [`CALL`] once in the background: `button` (password `password`) calls `target`
/// over `transport` (`u1` or `t1`), plays a generated voice-like WAV for `talk`, hangs up.
pub fn spawn_call(
    target: SocketAddr,
    transport: &str,
    button: &str,
    password: &str,
    talk: Duration,
) -> tokio::task::JoinHandle<Run> {
    let transport = transport.to_string();
    let args = [
        "-m", "1", "-key", "button", button, "-au", button, "-ap", password,
    ]
    .map(String::from);
    tokio::spawn(async move {
        let sipp = Sipp::new();
        let wav = sipp.file("voice.wav", &ulaw_wav(talk.as_secs() as u32 + 1));
        let scenario = CALL
            .replace("[wav]", wav.to_str().unwrap())
            .replace("[talk_ms]", &talk.as_millis().to_string());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let deadline = talk + Duration::from_secs(60);
        sipp.run(&scenario, target, &transport, &args, deadline)
            .await
    })
}
