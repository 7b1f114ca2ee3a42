//! Call recording (off by default: the node's `--record-calls`, docs/intercom.md,
//! "Recording"). A call's audio both ways, as received (G.711, nothing transcoded), goes to one
//! WAV file per call: two channels, the caller left and the operator right, format tag 7
//! (µ-law) or 6 (A-law), 8 kHz, 8 bits a sample.
//!
//! One file with two channels rather than two files: one hash in the audit trail and one
//! download for the whole call, and any player plays both sides together. The caller's RTP
//! paces the file (a field intercom sends a packet every 20 ms for the whole call): each of
//! its samples is written beside the operator's next queued sample, or silence when the
//! operator sent none (ringing, on hold). The operator's audio is thus aligned to the
//! caller's within the network's jitter; past [`limits::RECORDING_OPERATOR_BACKLOG`] samples
//! queued (a button that stops sending), the oldest are dropped and counted.
//!
//! The media path never waits for the disk: packets go to a writer thread through a bounded
//! queue, and a full queue drops the packet and marks the recording incomplete. The writer
//! stops writing at [`limits::RECORDING_SECONDS_MAX`] (the call goes on; the recording is
//! marked truncated). At the call's end the header's sizes are written, the file is fsynced
//! and hashed (SHA-256), and what happened comes back as a [`Recorded`] for the audit trail.
//!
//! Files: `{dir}/{incident}/{call}.wav` ([`path`]), `{call}` a hash of the SIP Call-ID (which
//! may hold any character).

use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;

use centinela_core::ids::IncidentId;
use sha2::{Digest, Sha256};

use crate::digest::hex;
use crate::limits;
use crate::sdp::Codec;

/// G.711's sample rate.
const RATE_HZ: u32 = 8_000;
/// Caller and operator.
const CHANNELS: u16 = 2;
/// The header this module writes: RIFF, `fmt ` (18 bytes: a non-PCM format has `cbSize`),
/// `fact` (the frame count), and the `data` chunk's header.
pub const HEADER_LEN: usize = 12 + (8 + 18) + (8 + 4) + 8;
/// Where the frame count sits (in `fact`), and the data chunk's size.
const FACT_FRAMES_AT: u64 = 12 + 26 + 8;
const DATA_LEN_AT: u64 = HEADER_LEN as u64 - 4;

/// The file of `call_id`'s recording in `incident` under `dir`.
pub fn path(dir: &Path, incident: &IncidentId, call_id: &str) -> PathBuf {
    let name = hex(&Sha256::digest(call_id.as_bytes())[..16]);
    dir.join(incident.as_str()).join(format!("{name}.wav"))
}

/// What a finished recording holds, for the audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// The file ([`path`]); it may be missing when the recording could not start.
    pub path: PathBuf,
    /// SHA-256 (hex) of the whole file as fsynced; empty when there is no readable file.
    pub sha256: String,
    /// The file's length.
    pub bytes: u64,
    /// Stereo frames written (8000 a second).
    pub frames: u64,
    /// Stopped at [`limits::RECORDING_SECONDS_MAX`].
    pub truncated: bool,
    /// Why the recording misses audio (a write failure, packets dropped at a full queue); the
    /// call itself was not disturbed.
    pub problem: Option<String>,
}

impl Recorded {
    /// The recording holds everything received up to its bound.
    pub fn complete(&self) -> bool {
        self.problem.is_none() && !self.sha256.is_empty()
    }

    pub fn seconds(&self) -> f64 {
        self.frames as f64 / f64::from(RATE_HZ)
    }

    /// The audit trail's detail: `call {id}: recorded {bytes} bytes, {s} s, sha256 {hex}`
    /// and what went wrong. The download reads the hash back from it
    /// ([`sha256_in_detail`]).
    pub fn audit_detail(&self, call_id: &str) -> String {
        let mut detail = format!(
            "call {call_id}: recorded {} bytes, {:.1} s, sha256 {}",
            self.bytes,
            self.seconds(),
            if self.sha256.is_empty() {
                "none"
            } else {
                &self.sha256
            }
        );
        if self.truncated {
            detail.push_str(&format!(
                "; truncated at {} s",
                limits::RECORDING_SECONDS_MAX
            ));
        }
        if let Some(problem) = &self.problem {
            detail.push_str("; incomplete: ");
            detail.push_str(problem);
        }
        // The audit's detail is bounded (core's AUDIT_DETAIL_LEN_MAX): the hash comes first.
        detail.chars().take(240).collect()
    }
}

/// The hash a `call_recorded` detail of `call_id` names, if it is that call's.
pub fn sha256_in_detail<'a>(detail: &'a str, call_id: &str) -> Option<&'a str> {
    let rest = detail.strip_prefix(&format!("call {call_id}: recorded "))?;
    let hash = rest.split("sha256 ").nth(1)?;
    let hash = hash.split([';', ' ']).next()?;
    (hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit())).then_some(hash)
}

/// Why a recording is not served.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("the recording file is missing: {0}")]
    Missing(std::io::Error),
    #[error("the recording is larger than any this node writes ({0} bytes)")]
    TooLarge(u64),
    #[error("the recording file does not match the hash in the audit trail (altered or damaged)")]
    Mismatch,
}

/// Reads the recording at `path` if its SHA-256 is `sha256` (the audit trail's).
pub fn read_verified(path: &Path, sha256: &str) -> Result<Vec<u8>, ReadError> {
    let file = File::open(path).map_err(ReadError::Missing)?;
    let len = file.metadata().map_err(ReadError::Missing)?.len();
    if len > bytes_max() {
        return Err(ReadError::TooLarge(len));
    }
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(bytes_max())
        .read_to_end(&mut bytes)
        .map_err(ReadError::Missing)?;
    if !hex(&Sha256::digest(&bytes)).eq_ignore_ascii_case(sha256) {
        return Err(ReadError::Mismatch);
    }
    Ok(bytes)
}

/// The largest file a recording makes: the header and the bound's frames.
pub fn bytes_max() -> u64 {
    HEADER_LEN as u64 + frames_max() * u64::from(CHANNELS)
}

fn frames_max() -> u64 {
    limits::RECORDING_SECONDS_MAX * u64::from(RATE_HZ)
}

enum Chunk {
    Caller(Vec<u8>),
    Operator(Vec<u8>),
}

/// A call being recorded: the media path's handle on the writer thread.
pub(crate) struct Recording {
    /// `None` once finished.
    tx: Mutex<Option<SyncSender<Chunk>>>,
    writer: Mutex<Option<JoinHandle<Recorded>>>,
    /// Packets dropped at a full queue.
    dropped: AtomicU64,
    /// The recording could not start: what the audit says instead.
    failed: Option<Recorded>,
    finished: AtomicBool,
}

impl Recording {
    /// Starts recording `call_id` of `incident` under `dir`. Never fails: a recording that
    /// cannot start says so when finished (the call goes on without it).
    pub(crate) fn start(dir: &Path, incident: &IncidentId, call_id: &str, codec: Codec) -> Self {
        let path = path(dir, incident, call_id);
        match open(&path, codec) {
            Ok(file) => {
                let (tx, rx) = sync_channel(limits::RECORDING_QUEUE);
                let silence = match codec {
                    Codec::Pcmu => 0xFF,
                    Codec::Pcma => 0xD5,
                };
                let writer = Writer::new(path.clone(), file, silence);
                let handle = std::thread::Builder::new()
                    .name("call-recording".into())
                    .spawn(move || writer.run(rx));
                match handle {
                    Ok(handle) => Self {
                        tx: Mutex::new(Some(tx)),
                        writer: Mutex::new(Some(handle)),
                        dropped: AtomicU64::new(0),
                        failed: None,
                        finished: AtomicBool::new(false),
                    },
                    Err(e) => Self::failed(path, format!("no writer thread: {e}")),
                }
            }
            Err(e) => Self::failed(path, format!("the file could not be created: {e}")),
        }
    }

    fn failed(path: PathBuf, problem: String) -> Self {
        tracing::warn!(path = %path.display(), %problem, "sip: call recording failed to start");
        Self {
            tx: Mutex::new(None),
            writer: Mutex::new(None),
            dropped: AtomicU64::new(0),
            finished: AtomicBool::new(false),
            failed: Some(Recorded {
                path,
                sha256: String::new(),
                bytes: 0,
                frames: 0,
                truncated: false,
                problem: Some(problem),
            }),
        }
    }

    /// The caller's audio (an RTP payload of the call's codec).
    pub(crate) fn caller(&self, payload: &[u8]) {
        self.send(Chunk::Caller(payload.to_vec()));
    }

    /// The operator's audio, as sent to the button.
    pub(crate) fn operator(&self, payload: &[u8]) {
        self.send(Chunk::Operator(payload.to_vec()));
    }

    fn send(&self, chunk: Chunk) {
        let tx = self.tx.lock().unwrap();
        let Some(tx) = tx.as_ref() else { return };
        match tx.try_send(chunk) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Ends the recording: the writer drains its queue, writes the header's sizes, fsyncs
    /// and hashes the file. `None` when finished already.
    pub(crate) async fn finish(&self) -> Option<Recorded> {
        if self.finished.swap(true, Ordering::SeqCst) {
            return None;
        }
        if let Some(failed) = &self.failed {
            return Some(failed.clone());
        }
        drop(self.tx.lock().unwrap().take()?);
        let writer = self.writer.lock().unwrap().take()?;
        let joined = tokio::task::spawn_blocking(move || writer.join()).await;
        let mut recorded = match joined {
            Ok(Ok(recorded)) => recorded,
            _ => {
                return Some(Recorded {
                    path: PathBuf::new(),
                    sha256: String::new(),
                    bytes: 0,
                    frames: 0,
                    truncated: false,
                    problem: Some("the writer thread failed".into()),
                });
            }
        };
        let dropped = self.dropped.load(Ordering::Relaxed);
        if dropped > 0 {
            let lost = format!("{dropped} packets dropped (the disk fell behind)");
            recorded.problem = Some(match recorded.problem.take() {
                Some(problem) => format!("{problem}; {lost}"),
                None => lost,
            });
        }
        if let Some(problem) = &recorded.problem {
            tracing::warn!(path = %recorded.path.display(), %problem, "sip: call recording incomplete");
        }
        Some(recorded)
    }
}

impl Drop for Recording {
    fn drop(&mut self) {
        // Dropped unfinished (the gateway stopping): the writer still closes the file
        // properly, but no audit entry names it.
        if self.tx.get_mut().unwrap().take().is_some() {
            tracing::warn!(
                "sip: a call recording closed without its audit entry (the gateway stopped)"
            );
        }
    }
}

/// Creates the file (and its incident's directory), readable by the node's account alone:
/// a recording is personal data (docs/intercom.md, "Legal note").
fn open(path: &Path, codec: Codec) -> std::io::Result<File> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    if let Some(parent) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)?;
    }
    let mut file = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(&header(codec, 0))?;
    Ok(file)
}

/// A G.711 stereo WAV header for `frames` frames.
fn header(codec: Codec, frames: u32) -> [u8; HEADER_LEN] {
    let format_tag: u16 = match codec {
        Codec::Pcmu => 7,
        Codec::Pcma => 6,
    };
    let data_len = frames * u32::from(CHANNELS);
    let mut h = [0u8; HEADER_LEN];
    let mut at = 0;
    let mut put = |bytes: &[u8]| {
        h[at..at + bytes.len()].copy_from_slice(bytes);
        at += bytes.len();
    };
    put(b"RIFF");
    put(&(HEADER_LEN as u32 - 8 + data_len).to_le_bytes());
    put(b"WAVE");
    put(b"fmt ");
    put(&18u32.to_le_bytes());
    put(&format_tag.to_le_bytes());
    put(&CHANNELS.to_le_bytes());
    put(&RATE_HZ.to_le_bytes());
    put(&(RATE_HZ * u32::from(CHANNELS)).to_le_bytes()); // bytes a second
    put(&CHANNELS.to_le_bytes()); // block align: a byte a channel
    put(&8u16.to_le_bytes()); // bits a sample
    put(&0u16.to_le_bytes()); // cbSize
    put(b"fact");
    put(&4u32.to_le_bytes());
    put(&frames.to_le_bytes());
    put(b"data");
    put(&data_len.to_le_bytes());
    h
}

/// The writer thread's state.
struct Writer {
    path: PathBuf,
    out: BufWriter<File>,
    silence: u8,
    /// The operator's samples not yet beside a caller's.
    operator: std::collections::VecDeque<u8>,
    frames: u64,
    truncated: bool,
    operator_dropped: u64,
    problem: Option<String>,
}

impl Writer {
    fn new(path: PathBuf, file: File, silence: u8) -> Self {
        Self {
            path,
            out: BufWriter::new(file),
            silence,
            operator: std::collections::VecDeque::new(),
            frames: 0,
            truncated: false,
            operator_dropped: 0,
            problem: None,
        }
    }

    fn run(mut self, rx: Receiver<Chunk>) -> Recorded {
        while let Ok(chunk) = rx.recv() {
            match chunk {
                Chunk::Caller(samples) => self.write_caller(&samples),
                Chunk::Operator(samples) => self.queue_operator(&samples),
            }
        }
        self.close()
    }

    fn queue_operator(&mut self, samples: &[u8]) {
        self.operator.extend(samples);
        let excess = self
            .operator
            .len()
            .saturating_sub(limits::RECORDING_OPERATOR_BACKLOG);
        if excess > 0 {
            self.operator.drain(..excess);
            self.operator_dropped += excess as u64;
        }
    }

    fn write_caller(&mut self, samples: &[u8]) {
        if self.problem.is_some() || self.truncated {
            return;
        }
        let room = frames_max() - self.frames;
        let take = (samples.len() as u64).min(room) as usize;
        let mut frames = Vec::with_capacity(take * 2);
        for &sample in &samples[..take] {
            frames.push(sample);
            frames.push(self.operator.pop_front().unwrap_or(self.silence));
        }
        if let Err(e) = self.out.write_all(&frames) {
            self.fail(format!("write failed after {} s: {e}", self.frames / 8000));
            return;
        }
        self.frames += take as u64;
        if take < samples.len() {
            self.truncated = true;
        }
    }

    fn fail(&mut self, problem: String) {
        tracing::warn!(path = %self.path.display(), %problem, "sip: call recording");
        self.problem.get_or_insert(problem);
    }

    /// The sizes into the header, fsync, and the file's hash.
    fn close(mut self) -> Recorded {
        let frames = u32::try_from(self.frames).unwrap_or(u32::MAX);
        let data_len = frames * u32::from(CHANNELS);
        let finished = (|| -> std::io::Result<()> {
            self.out.flush()?;
            let file = self.out.get_mut();
            file.seek(SeekFrom::Start(4))?;
            file.write_all(&(HEADER_LEN as u32 - 8 + data_len).to_le_bytes())?;
            file.seek(SeekFrom::Start(FACT_FRAMES_AT))?;
            file.write_all(&frames.to_le_bytes())?;
            file.seek(SeekFrom::Start(DATA_LEN_AT))?;
            file.write_all(&data_len.to_le_bytes())?;
            // What the data chunk says is what the file holds (a failed write may have
            // left part of a buffer behind).
            file.set_len(HEADER_LEN as u64 + u64::from(data_len))?;
            file.sync_all()
        })();
        if let Err(e) = finished {
            self.fail(format!("closing the file failed: {e}"));
        }
        let (sha256, bytes) = match hash_file(&self.path) {
            Ok(hashed) => hashed,
            Err(e) => {
                self.fail(format!("the file could not be read back: {e}"));
                (String::new(), 0)
            }
        };
        if self.operator_dropped > 0 {
            tracing::info!(path = %self.path.display(), samples = self.operator_dropped, "sip: operator audio past the recording's backlog dropped (the caller's side went quiet)");
        }
        Recorded {
            path: self.path,
            sha256,
            bytes,
            frames: self.frames,
            truncated: self.truncated,
            problem: self.problem,
        }
    }
}

fn hash_file(path: &Path) -> std::io::Result<(String, u64)> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 64 * 1024];
    let mut bytes = 0u64;
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
        bytes += read as u64;
    }
    Ok((hex(&hasher.finalize()), bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn incident() -> IncidentId {
        IncidentId::new("I-1").unwrap()
    }

    #[tokio::test]
    async fn both_sides_interleave_paced_by_the_caller_and_the_hash_is_the_files() {
        let dir = std::env::temp_dir().join(format!("rec-{}", rand::random::<u64>()));
        let recording = Recording::start(&dir, &incident(), "c1@x", Codec::Pcmu);
        recording.operator(&[1, 2]);
        recording.caller(&[10, 11, 12]);
        recording.caller(&[13]);
        let recorded = recording.finish().await.unwrap();
        assert!(recording.finish().await.is_none(), "finished once");
        assert!(recorded.complete(), "{recorded:?}");
        assert_eq!(recorded.frames, 4);
        let bytes = std::fs::read(&recorded.path).unwrap();
        assert_eq!(recorded.bytes, bytes.len() as u64);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&recorded.path)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the node's account alone");
        assert_eq!(&bytes[HEADER_LEN..], &[10, 1, 11, 2, 12, 0xFF, 13, 0xFF]);
        assert_eq!(&bytes[20..22], &7u16.to_le_bytes(), "µ-law");
        assert_eq!(
            &bytes[DATA_LEN_AT as usize..HEADER_LEN],
            &8u32.to_le_bytes()
        );
        assert_eq!(&bytes[4..8], &(bytes.len() as u32 - 8).to_le_bytes());
        assert_eq!(recorded.path, path(&dir, &incident(), "c1@x"));
        let detail = recorded.audit_detail("c1@x");
        let sha = sha256_in_detail(&detail, "c1@x").unwrap();
        assert_eq!(sha, recorded.sha256);
        assert_eq!(sha256_in_detail(&detail, "c2@x"), None, "another call's");
        assert_eq!(read_verified(&recorded.path, sha).unwrap(), bytes);
        // One byte changed on disk: refused.
        let mut altered = bytes.clone();
        altered[HEADER_LEN] ^= 1;
        std::fs::write(&recorded.path, &altered).unwrap();
        assert!(matches!(
            read_verified(&recorded.path, sha),
            Err(ReadError::Mismatch)
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn a_recording_that_cannot_start_says_so() {
        // A file where the incident's directory should be.
        let dir = std::env::temp_dir().join(format!("rec-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(incident().as_str()), b"in the way").unwrap();
        let recording = Recording::start(&dir, &incident(), "c1", Codec::Pcma);
        recording.caller(&[1, 2, 3]);
        let recorded = recording.finish().await.unwrap();
        assert!(!recorded.complete());
        let detail = recorded.audit_detail("c1");
        assert!(
            detail.contains("sha256 none; incomplete: the file could not be created"),
            "{detail}"
        );
        assert_eq!(sha256_in_detail(&detail, "c1"), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
