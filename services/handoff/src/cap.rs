//! An incident as an OASIS CAP 1.2 `alert`.
//!
//! The mapping (docs/handoff.md has it as a table):
//!
//! | CAP | from |
//! |---|---|
//! | `identifier` | `centinela.{incident}.{agency}`; later messages add `.{seq}` |
//! | `sender`, `info/senderName` | the agencies file (`sender`, `sender_name`) |
//! | `sent` | when the message was queued, RFC 3339 in the city's zone (`CENTINELA_TIMEZONE`) |
//! | `status` | `Actual` |
//! | `msgType` | `Alert` first; `Update` on changes and on closing as handled; `Cancel` on closing as prank, false alarm or cancelled |
//! | `scope`, `restriction` | `Restricted`: the messages carry a caller's personal data |
//! | `references` | every earlier message of the hand-off, `sender,identifier,sent` |
//! | `incidents` | the Centinela incident id |
//! | `info/category` | [`category`] |
//! | `info/event` | [`event`] |
//! | `info/urgency`, `severity`, `certainty` | [`urgency`], [`severity`], [`certainty`] |
//! | `info/area` | the button: `areaDesc`, `circle` `lat,lon 0.1` (km) |
//!
//! Documents are written with quick-xml's writer, which escapes text; characters XML 1.0
//! cannot carry at all (control characters other than tab and newlines) are replaced by spaces.

use centinela_core::handoff::{CapMessage, Handoff, MsgType, Reported};
use centinela_core::ids::AgencyId;
use centinela_core::incident::{Incident, IncidentKind, IncidentState, Priority, Resolution};
use centinela_core::time::Timestamp;
use jiff::tz::{TimeZone, TimeZoneDatabase};
use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};

/// CAP 1.2's namespace.
pub const NAMESPACE: &str = "urn:oasis:names:tc:emergency:cap:1.2";
/// The variable naming the city's zone (as the CLI's human output).
pub const ZONE_VAR: &str = "CENTINELA_TIMEZONE";
pub const ZONE_DEFAULT: &str = "America/Lima";
/// The radius of the `circle` around the button, in km: a button marks a street corner.
pub const AREA_RADIUS_KM: f64 = 0.1;
/// Why the messages are `Restricted`.
pub const RESTRICTION: &str =
    "For the receiving emergency agency only: contains a caller's personal data.";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{ZONE_VAR}={0:?}: no such time zone in the IANA database")]
    UnknownZone(String),
    #[error("instant {0} ms cannot be written as a date")]
    BadInstant(u64),
}

/// What every message of a node shares: who sends, and the city's zone.
#[derive(Clone, Debug)]
pub struct Sender {
    pub sender: String,
    pub sender_name: String,
    pub zone: TimeZone,
}

impl Sender {
    pub fn new(sender: &str, sender_name: &str, zone: TimeZone) -> Self {
        Self {
            sender: sender.to_string(),
            sender_name: sender_name.to_string(),
            zone,
        }
    }

    /// The zone `name` from the bundled IANA database.
    pub fn zone_named(name: &str) -> Result<TimeZone, Error> {
        TimeZoneDatabase::bundled()
            .get(name)
            .map_err(|_| Error::UnknownZone(name.to_string()))
    }

    /// The zone of [`ZONE_VAR`], or [`ZONE_DEFAULT`].
    pub fn zone_from_env() -> Result<TimeZone, Error> {
        match std::env::var(ZONE_VAR) {
            Ok(name) if !name.trim().is_empty() => Self::zone_named(name.trim()),
            _ => Self::zone_named(ZONE_DEFAULT),
        }
    }

    /// CAP's `sent` form: `2026-11-27T17:05:12-05:00` (whole seconds, numeric offset; CAP
    /// forbids `Z`).
    pub fn sent(&self, at: Timestamp) -> Result<String, Error> {
        let instant = i64::try_from(at.as_millis())
            .ok()
            .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
            .ok_or(Error::BadInstant(at.as_millis()))?;
        Ok(instant
            .to_zoned_datetime(self.zone.clone())
            .strftime("%Y-%m-%dT%H:%M:%S%:z")
            .to_string())
    }
}

/// `info/category` by kind: crimes go to `Security` (CAP: law enforcement), medical
/// emergencies to `Health` and `Rescue`, the rest (unclassified, other) to `Safety`.
pub fn category(kind: IncidentKind) -> &'static [&'static str] {
    match kind {
        IncidentKind::Robbery
        | IncidentKind::Assault
        | IncidentKind::PurseSnatching
        | IncidentKind::VehicleTheft => &["Security"],
        IncidentKind::Medical => &["Health", "Rescue"],
        IncidentKind::Unclassified | IncidentKind::Other => &["Safety"],
    }
}

/// `info/event` by kind.
pub fn event(kind: IncidentKind) -> &'static str {
    match kind {
        IncidentKind::Unclassified => "Panic button alarm",
        IncidentKind::Robbery => "Robbery",
        IncidentKind::Assault => "Assault",
        IncidentKind::PurseSnatching => "Purse snatching",
        IncidentKind::VehicleTheft => "Vehicle theft",
        IncidentKind::Medical => "Medical emergency",
        IncidentKind::Other => "Public safety incident",
    }
}

/// `info/urgency`: `Past` once closed; by priority while open.
pub fn urgency(priority: Priority, closed: bool) -> &'static str {
    if closed {
        return "Past";
    }
    match priority {
        Priority::Critical | Priority::High => "Immediate",
        Priority::Medium | Priority::Low => "Expected",
    }
}

/// `info/severity`: `Unknown` until an operator classified the incident, then by priority.
pub fn severity(kind: IncidentKind, priority: Priority) -> &'static str {
    if kind == IncidentKind::Unclassified {
        return "Unknown";
    }
    match priority {
        Priority::Critical => "Extreme",
        Priority::High => "Severe",
        Priority::Medium => "Moderate",
        Priority::Low => "Minor",
    }
}

/// `info/certainty`: a press alone is `Possible`; an operator's classification (after talking
/// to the caller) `Likely`; a unit on scene `Observed`; closed as a prank or false alarm
/// `Unlikely`.
pub fn certainty(incident: &Incident) -> &'static str {
    if let Some(Resolution::Prank | Resolution::FalseAlarm) = incident.resolution {
        return "Unlikely";
    }
    let been_on_scene = incident.state >= IncidentState::OnScene
        && incident
            .audit
            .iter()
            .any(|e| e.action == centinela_core::incident::AuditAction::UnitOnScene);
    if been_on_scene {
        "Observed"
    } else if incident.kind != IncidentKind::Unclassified {
        "Likely"
    } else {
        "Possible"
    }
}

/// The `msgType` a change of the incident sends: `Cancel` when it closed as not an emergency
/// (prank, false alarm, cancelled), `Update` otherwise.
pub fn msg_type_for(incident: &Incident) -> MsgType {
    match incident.resolution {
        Some(Resolution::Prank | Resolution::FalseAlarm | Resolution::Cancelled) => MsgType::Cancel,
        _ => MsgType::Update,
    }
}

/// The first message's identifier: `centinela.{incident}.{agency}` (ids hold only letters,
/// digits, `.`, `_`, `:` and `-`, all allowed in a CAP identifier).
pub fn cap_id(incident: &Incident, agency: &AgencyId) -> String {
    format!("centinela.{}.{agency}", incident.id)
}

/// What one document says besides the incident.
pub struct Document<'a> {
    pub msg_type: MsgType,
    pub identifier: &'a str,
    pub sent: &'a str,
    /// Earlier messages: `(identifier, sent)`.
    pub references: Vec<(&'a str, &'a str)>,
    /// Where the button is, for people (`areaDesc`).
    pub area_desc: &'a str,
    /// The operator's note on the hand-off.
    pub note: Option<&'a str>,
}

/// XML 1.0 cannot carry most control characters, escaped or not.
fn xml_safe(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\t' | '\n' | '\r' => c,
            c if (c as u32) < 0x20 || c == '\u{fffe}' || c == '\u{ffff}' => ' ',
            c => c,
        })
        .collect()
}

struct Xml {
    writer: Writer<Vec<u8>>,
}

impl Xml {
    // Writing into a Vec<u8> cannot fail.
    fn open(&mut self, name: &str) {
        self.writer
            .write_event(Event::Start(BytesStart::new(name)))
            .expect("writing to memory");
    }
    fn close(&mut self, name: &str) {
        self.writer
            .write_event(Event::End(BytesEnd::new(name)))
            .expect("writing to memory");
    }
    fn text(&mut self, name: &str, value: &str) {
        let value = xml_safe(value);
        self.open(name);
        self.writer
            .write_event(Event::Text(BytesText::new(&value)))
            .expect("writing to memory");
        self.close(name);
    }
}

/// The description: what happened, who called, what the operators noted.
fn description(incident: &Incident, note: Option<&str>, sender: &Sender) -> String {
    let when = sender
        .sent(incident.first_press_at)
        .unwrap_or_else(|_| format!("{} ms", incident.first_press_at.as_millis()));
    let mut lines = vec![format!(
        "Panic button {} pressed at {when} ({} press{}).",
        incident.button,
        incident.press_count,
        if incident.press_count == 1 { "" } else { "es" }
    )];
    lines.push(format!(
        "Classified as {} ({} priority); state {}.",
        incident.kind, incident.priority, incident.state
    ));
    if !incident.units.is_empty() {
        let units: Vec<&str> = incident.units.iter().map(|u| u.as_str()).collect();
        lines.push(format!("Serenazgo units attached: {}.", units.join(", ")));
    }
    if let Some(caller) = &incident.caller {
        if let Some(name) = &caller.name {
            lines.push(format!("Caller name: {name}"));
        }
        if let Some(phone) = &caller.phone {
            lines.push(format!("Caller phone: {phone}"));
        }
        if let Some(notes) = &caller.notes {
            lines.push(format!("Caller notes: {notes}"));
        }
    }
    if let Some(note) = note {
        lines.push(format!("Operator note: {note}"));
    }
    if let Some(resolution) = incident.resolution {
        lines.push(format!("Closed in Centinela as {resolution}."));
    }
    lines.join("\n")
}

/// The CAP 1.2 `alert` for `incident`.
pub fn render(incident: &Incident, document: &Document<'_>, sender: &Sender) -> String {
    let mut xml = Xml {
        writer: Writer::new_with_indent(Vec::new(), b' ', 2),
    };
    xml.writer
        .write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))
        .expect("writing to memory");
    let mut alert = BytesStart::new("alert");
    alert.push_attribute(("xmlns", NAMESPACE));
    xml.writer
        .write_event(Event::Start(alert))
        .expect("writing to memory");
    xml.text("identifier", document.identifier);
    xml.text("sender", &sender.sender);
    xml.text("sent", document.sent);
    xml.text("status", "Actual");
    xml.text("msgType", document.msg_type.cap_name());
    xml.text("source", "Centinela");
    xml.text("scope", "Restricted");
    xml.text("restriction", RESTRICTION);
    if document.msg_type == MsgType::Cancel {
        let why = incident
            .resolution
            .map_or("cancelled".to_string(), |r| r.to_string());
        xml.text("note", &format!("Closed in Centinela as {why}."));
    }
    if !document.references.is_empty() {
        let references: Vec<String> = document
            .references
            .iter()
            .map(|(identifier, sent)| format!("{},{identifier},{sent}", sender.sender))
            .collect();
        xml.text("references", &references.join(" "));
    }
    xml.text("incidents", incident.id.as_str());

    xml.open("info");
    for category in category(incident.kind) {
        xml.text("category", category);
    }
    xml.text("event", event(incident.kind));
    xml.text("urgency", urgency(incident.priority, !incident.is_open()));
    xml.text("severity", severity(incident.kind, incident.priority));
    xml.text("certainty", certainty(incident));
    xml.text("senderName", &sender.sender_name);
    let headline = format!(
        "{}: {} at {}",
        match document.msg_type {
            MsgType::Alert => "Alert",
            MsgType::Update => "Update",
            MsgType::Cancel => "Cancelled",
        },
        event(incident.kind),
        document.area_desc
    );
    // CAP recommends headlines under 160 characters.
    xml.text("headline", &headline.chars().take(160).collect::<String>());
    xml.text("description", &description(incident, document.note, sender));
    for (name, value) in [
        ("centinela:incident", incident.id.to_string()),
        ("centinela:button", incident.button.to_string()),
        ("centinela:priority", incident.priority.to_string()),
        ("centinela:state", incident.state.to_string()),
    ] {
        xml.open("parameter");
        xml.text("valueName", name);
        xml.text("value", &value);
        xml.close("parameter");
    }
    xml.open("area");
    xml.text("areaDesc", document.area_desc);
    xml.text(
        "circle",
        &format!(
            "{:.6},{:.6} {AREA_RADIUS_KM}",
            incident.position.lat(),
            incident.position.lon()
        ),
    );
    xml.close("area");
    xml.close("info");
    xml.close("alert");
    String::from_utf8(xml.writer.into_inner()).expect("quick-xml writes UTF-8")
}

/// The hand-off's first message, the Alert.
pub fn first_message(
    incident: &Incident,
    agency: &AgencyId,
    area_desc: &str,
    note: Option<&str>,
    sender: &Sender,
    now: Timestamp,
) -> Result<CapMessage, Error> {
    let identifier = cap_id(incident, agency);
    let sent = sender.sent(now)?;
    let body = render(
        incident,
        &Document {
            msg_type: MsgType::Alert,
            identifier: &identifier,
            sent: &sent,
            references: Vec::new(),
            area_desc,
            note,
        },
        sender,
    );
    Ok(CapMessage::new(
        0,
        MsgType::Alert,
        identifier,
        sent,
        body,
        now,
    ))
}

/// The next message `handoff` owes its agency, if the incident changed since the last one
/// (and there is room for it): an Update, or on closing the final Update or a Cancel.
pub fn follow_up(
    handoff: &Handoff,
    incident: &Incident,
    area_desc: &str,
    sender: &Sender,
    now: Timestamp,
) -> Result<Option<(CapMessage, Reported)>, Error> {
    let reported = Reported::of(incident);
    if reported == handoff.reported || !handoff.can_queue(reported.resolution.is_some()) {
        return Ok(None);
    }
    let seq = handoff.messages.len() as u32;
    let identifier = format!("{}.{seq}", handoff.cap_id);
    let sent = sender.sent(now)?;
    let msg_type = msg_type_for(incident);
    let body = render(
        incident,
        &Document {
            msg_type,
            identifier: &identifier,
            sent: &sent,
            references: handoff
                .messages
                .iter()
                .map(|m| (m.identifier.as_str(), m.sent.as_str()))
                .collect(),
            area_desc,
            note: handoff.note.as_deref(),
        },
        sender,
    );
    Ok(Some((
        CapMessage::new(seq, msg_type, identifier, sent, body, now),
        reported,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{NOW, classified, closed, opened};

    fn lima() -> Sender {
        Sender::new(
            "centinela@lima.example",
            "Serenazgo de Lima",
            Sender::zone_named("America/Lima").unwrap(),
        )
    }

    #[test]
    fn sent_is_in_the_city_zone_with_a_numeric_offset() {
        assert_eq!(lima().sent(NOW).unwrap(), "2026-11-27T17:05:12-05:00");
        let utc = Sender::new("s", "n", TimeZone::UTC);
        assert_eq!(utc.sent(NOW).unwrap(), "2026-11-27T22:05:12+00:00");
        assert!(Sender::zone_named("Mars/Olympus").is_err());
    }

    #[test]
    fn the_mapping_table() {
        use IncidentKind::*;
        let table = [
            // kind, category, event, severity at its default priority, urgency
            (
                Unclassified,
                "Safety",
                "Panic button alarm",
                "Unknown",
                "Immediate",
            ),
            (Robbery, "Security", "Robbery", "Severe", "Immediate"),
            (Assault, "Security", "Assault", "Extreme", "Immediate"),
            (
                PurseSnatching,
                "Security",
                "Purse snatching",
                "Moderate",
                "Expected",
            ),
            (
                VehicleTheft,
                "Security",
                "Vehicle theft",
                "Moderate",
                "Expected",
            ),
            (
                Medical,
                "Health",
                "Medical emergency",
                "Extreme",
                "Immediate",
            ),
            (
                Other,
                "Safety",
                "Public safety incident",
                "Minor",
                "Expected",
            ),
        ];
        for (kind, first_category, name, severity_, urgency_) in table {
            assert_eq!(category(kind)[0], first_category, "{kind}");
            assert_eq!(event(kind), name);
            assert_eq!(severity(kind, kind.default_priority()), severity_, "{kind}");
            assert_eq!(urgency(kind.default_priority(), false), urgency_, "{kind}");
            assert_eq!(urgency(kind.default_priority(), true), "Past");
        }
        assert_eq!(category(Medical), ["Health", "Rescue"]);
    }

    #[test]
    fn certainty_and_msg_type_follow_the_incident() {
        assert_eq!(certainty(&opened("inc-1")), "Possible");
        let robbery = classified("inc-1", IncidentKind::Robbery);
        assert_eq!(certainty(&robbery), "Likely");
        assert_eq!(msg_type_for(&robbery), MsgType::Update);
        let prank = closed("inc-1", IncidentKind::Robbery, Resolution::Prank);
        assert_eq!(certainty(&prank), "Unlikely");
        assert_eq!(msg_type_for(&prank), MsgType::Cancel);
        let handled = closed("inc-1", IncidentKind::Robbery, Resolution::Handled);
        assert_eq!(msg_type_for(&handled), MsgType::Update);
        let cancelled = closed("inc-1", IncidentKind::Robbery, Resolution::Cancelled);
        assert_eq!(msg_type_for(&cancelled), MsgType::Cancel);
    }

    #[test]
    fn the_alert_carries_the_incident_escaped() {
        let incident = classified("inc-1", IncidentKind::Robbery);
        let agency = AgencyId::new("pnp").unwrap();
        let message = first_message(
            &incident,
            &agency,
            "Plaza Mayor",
            Some("needs <PNP> & SAMU"),
            &lima(),
            NOW,
        )
        .unwrap();
        let xml = &message.body;
        assert_eq!(message.identifier, "centinela.inc-1.pnp");
        assert!(
            xml.contains("<identifier>centinela.inc-1.pnp</identifier>"),
            "{xml}"
        );
        assert!(xml.contains("<sent>2026-11-27T17:05:12-05:00</sent>"));
        assert!(xml.contains("<msgType>Alert</msgType>"));
        assert!(xml.contains("<scope>Restricted</scope>"));
        assert!(xml.contains("<circle>-12.046400,-77.042800 0.1</circle>"));
        assert!(
            xml.contains("María &lt;Ñ&gt; &amp; &quot;Pepe&quot;"),
            "{xml}"
        );
        assert!(xml.contains("Operator note: needs &lt;PNP&gt; &amp; SAMU"));
        assert!(!xml.contains('\u{7}'), "control characters are replaced");
        assert!(!xml.contains("<references>"));
    }

    #[test]
    fn updates_reference_every_earlier_message() {
        let sender = lima();
        let agency = AgencyId::new("pnp").unwrap();
        let first = opened("inc-1");
        let alert = first_message(&first, &agency, "Plaza Mayor", None, &sender, NOW).unwrap();
        let mut handoff = Handoff {
            incident: first.id.clone(),
            agency: agency.clone(),
            cap_id: alert.identifier.clone(),
            operator: centinela_core::ids::OperatorId::new("ana").unwrap(),
            note: None,
            created_at: NOW,
            messages: vec![alert],
            reported: Reported::of(&first),
            acks: Vec::new(),
        };
        assert!(
            follow_up(&handoff, &first, "Plaza Mayor", &sender, NOW)
                .unwrap()
                .is_none()
        );
        let later = Timestamp::from_millis(NOW.as_millis() + 60_000);
        let robbery = classified("inc-1", IncidentKind::Robbery);
        let (update, reported) = follow_up(&handoff, &robbery, "Plaza Mayor", &sender, later)
            .unwrap()
            .unwrap();
        assert_eq!(update.msg_type, MsgType::Update);
        assert_eq!(update.identifier, "centinela.inc-1.pnp.1");
        assert!(update.body.contains(
            "<references>centinela@lima.example,centinela.inc-1.pnp,2026-11-27T17:05:12-05:00</references>"
        ), "{}", update.body);
        handoff.queue(update, reported);
        let prank = closed("inc-1", IncidentKind::Robbery, Resolution::Prank);
        let (cancel, reported) = follow_up(&handoff, &prank, "Plaza Mayor", &sender, later)
            .unwrap()
            .unwrap();
        assert_eq!(cancel.msg_type, MsgType::Cancel);
        assert!(cancel.body.contains("centinela.inc-1.pnp,2026-11-27T17:05:12-05:00 centinela@lima.example,centinela.inc-1.pnp.1,"));
        handoff.queue(cancel, reported);
        assert!(
            follow_up(&handoff, &prank, "Plaza Mayor", &sender, later)
                .unwrap()
                .is_none()
        );
    }
}
