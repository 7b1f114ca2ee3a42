//! What a run records: every change the store committed (in revision order, from a watch the
//! store host runs in-process, so no simulated fault can hide one), what the simulated devices
//! and the operator saw, and the faults injected — and the history's hash.

use std::collections::BTreeMap;

use centinela_node::DISPATCHER_ELECTION;

/// One committed change under `/centinela/`.
#[derive(Clone, Debug)]
pub struct StoreEvent {
    /// Simulated milliseconds since the start of the run when the watch delivered it.
    pub t_ms: u64,
    pub revision: i64,
    pub key: String,
    /// `None`: a delete.
    pub value: Option<Vec<u8>>,
    pub create_revision: i64,
}

/// A press a device got an acknowledgement for.
#[derive(Clone, Debug)]
pub struct AckedPress {
    pub button: String,
    pub press_id: String,
    pub incident: String,
    pub duplicate: bool,
    /// When the device first sent it, and when the acknowledgement came (simulated ms).
    pub sent_ms: u64,
    pub acked_ms: u64,
}

/// Everything a run recorded.
#[derive(Clone, Debug, Default)]
pub struct History {
    /// Client-side events (`(simulated ms, text)`): presses sent, acked, given up; terminal
    /// acks; operator closes.
    pub client: Vec<(u64, String)>,
    pub acked: Vec<AckedPress>,
    /// Presses sent, by press id: (button, sent ms).
    pub sent: BTreeMap<String, (String, u64)>,
    /// The store's committed changes, in revision order.
    pub store: Vec<StoreEvent>,
    /// Faults injected and healed (`(simulated ms, text)`).
    pub faults: Vec<(u64, String)>,
}

impl History {
    pub fn client_event(&mut self, t_ms: u64, text: String) {
        self.client.push((t_ms, text));
    }

    /// A 64-bit FNV-1a hash of the canonicalized history: client events and faults sorted (two
    /// tasks finishing in the same simulated millisecond may record in either order without
    /// the run being any different), store changes in revision order.
    pub fn hash(&self) -> u64 {
        let mut hash = Fnv::default();
        let mut client = self.client.clone();
        client.sort();
        for (t, text) in &client {
            hash.write(&t.to_le_bytes());
            hash.write(text.as_bytes());
        }
        let mut faults = self.faults.clone();
        faults.sort();
        for (t, text) in &faults {
            hash.write(&t.to_le_bytes());
            hash.write(text.as_bytes());
        }
        for event in &self.store {
            hash.write(&event.revision.to_le_bytes());
            hash.write(&event.create_revision.to_le_bytes());
            hash.write(event.key.as_bytes());
            match &event.value {
                Some(value) => hash.write(value),
                None => hash.write(b"<deleted>"),
            }
        }
        hash.0
    }

    /// The history as text, one event a line (client events and faults sorted, then the
    /// store's changes): what `CENTINELA_SIM_DUMP=DIR` writes, to diff two runs of a seed.
    pub fn dump(&self) -> String {
        let mut lines: Vec<String> = Vec::new();
        let mut client = self.client.clone();
        client.sort();
        lines.extend(
            client
                .iter()
                .map(|(t, text)| format!("{t:>7} client {text}")),
        );
        let mut faults = self.faults.clone();
        faults.sort();
        lines.extend(
            faults
                .iter()
                .map(|(t, text)| format!("{t:>7} fault {text}")),
        );
        for event in &self.store {
            lines.push(format!(
                "{:>7} rev {} {} {}",
                event.t_ms,
                event.revision,
                event.key,
                event
                    .value
                    .as_ref()
                    .map_or("<deleted>".into(), |v| String::from_utf8_lossy(v)
                        .into_owned())
            ));
        }
        lines.join("\n")
    }

    /// The dispatcher's leader by the store's log so far (lowest create revision among the
    /// live election keys), and its term.
    pub fn leader(&self) -> Option<(String, i64)> {
        let prefix = format!("{}/", DISPATCHER_ELECTION.trim_end_matches('/'));
        let mut candidates: BTreeMap<String, (i64, String)> = BTreeMap::new();
        for event in &self.store {
            if !event.key.starts_with(&prefix) {
                continue;
            }
            match &event.value {
                Some(value) => {
                    candidates.insert(
                        event.key.clone(),
                        (
                            event.create_revision,
                            String::from_utf8_lossy(value).into_owned(),
                        ),
                    );
                }
                None => {
                    candidates.remove(&event.key);
                }
            }
        }
        candidates
            .into_values()
            .min()
            .map(|(term, node)| (node, term))
    }
}

/// FNV-1a, 64 bits: stable across processes, platforms and Rust versions (unlike std's
/// `DefaultHasher`, whose algorithm is unspecified).
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 ^= u64::from(*byte);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
        // A separator, so ("ab", "c") and ("a", "bc") hash differently.
        self.0 ^= 0xff;
        self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
    }
}
