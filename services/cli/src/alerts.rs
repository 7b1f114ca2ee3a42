//! `centinela alerts` and `centinela clear-alert`: the open device alerts as the console's
//! alerts panel lists them (from the same `ListButtons` and `ListCameras` calls), and a
//! supervisor's clearance (`Operator.ClearAlert`, recorded in the device's audit trail).

use clap::{Args, ValueEnum};
use serde_json::Value;
use tonic::Code;

use centinela_proto::v1;

use crate::client::{Client, Failure, LIST_REPLY_BYTES_MAX, Result};
use crate::output::{print_json, print_line, print_table};

/// An alert's kind, as the console and the JSON name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum AlertKindArg {
    /// A button's enclosure was opened (clearing it returns the button to service).
    Tamper,
    ButtonOffline,
    CameraOffline,
}

impl AlertKindArg {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKindArg::Tamper => "tamper",
            AlertKindArg::ButtonOffline => "button_offline",
            AlertKindArg::CameraOffline => "camera_offline",
        }
    }

    /// Whether the alert is on a camera (else on a button).
    fn on_camera(self) -> bool {
        self == AlertKindArg::CameraOffline
    }
}

#[derive(Args)]
pub struct ClearAlertArgs {
    /// The button (tamper, button_offline) or camera (camera_offline) whose alert to clear.
    pub device: String,
    /// The kind of the open alert, as `centinela alerts` lists it: a different open alert is
    /// left as it is.
    #[arg(value_enum)]
    pub kind: AlertKindArg,
    /// What was found ("pole inspected, door resealed"), kept in the device's audit trail (at
    /// most 192 bytes).
    #[arg(long)]
    pub note: Option<String>,
}

/// One open alert, as listed.
struct Listed {
    device: String,
    device_type: &'static str,
    kind: String,
    since_ms: u64,
    /// For a camera that is offline: why, as the node last heard it.
    detail: Option<String>,
}

impl Client {
    /// `alerts`: every open alert on a button or a camera, oldest first.
    pub async fn alerts(&self) -> Result<()> {
        let buttons = self
            .listing(|c| async move {
                c.max_decoding_message_size(LIST_REPLY_BYTES_MAX)
                    .list_buttons(v1::ListButtonsRequest {})
                    .await
            })
            .await?;
        let cameras = self
            .listing(|c| async move {
                c.max_decoding_message_size(LIST_REPLY_BYTES_MAX)
                    .list_cameras(v1::ListCamerasRequest {})
                    .await
            })
            .await?;
        let mut listed: Vec<Listed> = buttons
            .buttons
            .iter()
            .filter_map(|b| {
                let alert = b.alert.as_ref()?;
                Some(Listed {
                    device: b.id.clone(),
                    device_type: "button",
                    kind: alert.kind.clone(),
                    since_ms: alert.since_ms,
                    detail: None,
                })
            })
            .chain(cameras.cameras.iter().filter_map(|c| {
                let alert = c.alert.as_ref()?;
                Some(Listed {
                    device: c.id.clone(),
                    device_type: "camera",
                    kind: alert.kind.clone(),
                    since_ms: alert.since_ms,
                    detail: c.fault.clone().filter(|_| !c.online),
                })
            }))
            .collect();
        listed.sort_by(|a, b| (a.since_ms, &a.device).cmp(&(b.since_ms, &b.device)));
        if self.json {
            let list: Vec<Value> = listed
                .iter()
                .map(|a| {
                    serde_json::json!({
                        "device": a.device,
                        "device_type": a.device_type,
                        "kind": a.kind,
                        "since_ms": a.since_ms,
                        "detail": a.detail,
                    })
                })
                .collect();
            print_json(&list)?;
        } else if listed.is_empty() {
            print_line("no open alerts")?;
        } else {
            let rows: Vec<Vec<String>> = listed
                .iter()
                .map(|a| {
                    vec![
                        a.device.clone(),
                        a.device_type.to_string(),
                        a.kind.clone(),
                        self.zone.format_ms(a.since_ms),
                        a.detail.clone().unwrap_or_default(),
                    ]
                })
                .collect();
            print_table(&["DEVICE", "TYPE", "KIND", "SINCE", "DETAIL"], &rows)?;
        }
        Ok(())
    }

    /// `clear-alert DEVICE KIND`: a supervisor clears the device's open alert of that kind.
    pub async fn clear_alert(&self, args: &ClearAlertArgs) -> Result<()> {
        let device = if args.kind.on_camera() {
            v1::clear_alert_request::Device::CameraId(args.device.clone())
        } else {
            v1::clear_alert_request::Device::ButtonId(args.device.clone())
        };
        let request = v1::ClearAlertRequest {
            device: Some(device),
            operator_id: self.operator.clone(),
            note: args.note.clone().unwrap_or_default(),
            kind: args.kind.as_str().to_string(),
        };
        let reply = self
            .operator(|mut c| {
                let request = request.clone();
                async move { c.clear_alert(request).await }
            })
            .await
            .map_err(|status| clear_failure(status, args))?;
        let clearance = reply.clearance.unwrap_or_default();
        if self.json {
            print_json(&serde_json::json!({
                "device": args.device,
                "device_type": if args.kind.on_camera() { "camera" } else { "button" },
                "kind": clearance.kind,
                "raised_at_ms": clearance.raised_at_ms,
                "cleared_at_ms": clearance.cleared_at_ms,
                "cleared_by": clearance.cleared_by,
            }))?;
        } else {
            print_line(&format!(
                "cleared {} on {} (raised {}) as {}",
                clearance.kind,
                args.device,
                self.zone.format_ms(clearance.raised_at_ms),
                clearance.cleared_by,
            ))?;
        }
        Ok(())
    }
}

/// The node's refusal, with what to do about it.
fn clear_failure(status: tonic::Status, args: &ClearAlertArgs) -> Failure {
    let hint = match status.code() {
        Code::PermissionDenied => Some(
            "clearing an alert is a supervisor's call: pass a supervisor's --operator and \
             --password (or CENTINELA_OPERATOR / CENTINELA_PASSWORD)"
                .to_string(),
        ),
        Code::NotFound => Some(format!(
            "no {} {}: `centinela alerts` lists the open alerts and their devices",
            if args.kind.on_camera() {
                "camera"
            } else {
                "button"
            },
            args.device
        )),
        Code::FailedPrecondition => Some(format!(
            "nothing to clear as {}: `centinela alerts` lists the open alerts",
            args.kind.as_str()
        )),
        _ => None,
    };
    let failure = Failure::from(status);
    match hint {
        Some(hint) => failure.with_hint(hint),
        None => failure,
    }
}
