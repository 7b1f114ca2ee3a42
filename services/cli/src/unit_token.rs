//! `centinela unit-token UNIT`: a unit's credential for the brigade app (docs/brigade-app.md).
//!
//! Draws a fresh random token, prints it (to paste into the app at `/brigada/`, or to hand to
//! the officer), and writes the devices-file entry that lets it act as that unit, holding only
//! the token's BLAKE2b-256 digest (docs/security.md): appended to `--devices-file` when given,
//! else printed on standard error. Nothing keeps the token itself: a lost one is replaced by
//! drawing another and removing the old entry (which revokes it once nodes restart).
//!
//! With `--console-url`, it also prints the app's sign-in link, `<console>/brigada/#token=...`,
//! as a QR code drawn with Unicode half blocks (on standard error, with the link): the officer's
//! phone camera opens the app already signed in. The token travels in the fragment, which a
//! browser never sends to a server, and the app removes it from the address bar.

use std::io::{Read, Write};
use std::path::PathBuf;

use clap::Args;

use crate::output::{print_json, print_line};

/// Random bytes per token: 192 bits, far beyond guessing (as the other device tokens).
const TOKEN_BYTES: usize = 24;

#[derive(Args)]
pub struct UnitTokenArgs {
    /// The unit (brigade) id, as the scenario names it.
    unit: String,
    /// The devices file (`CENTINELA_DEVICES_FILE`) to append the unit's entry to.
    #[arg(long)]
    devices_file: Option<PathBuf>,
    /// The console's address as the officers' phones reach it (`https://centinela.example`):
    /// prints the app's sign-in link and its QR code.
    #[arg(long)]
    console_url: Option<String>,
}

/// The brigade app's sign-in link for `token` on the console at `console` (any trailing `/`
/// and any path under `/brigada/` dropped): the token in the fragment, which the app reads.
pub fn app_url(console: &str, token: &str) -> Result<String, String> {
    let base = console.trim().trim_end_matches('/');
    let base = base.strip_suffix("/brigada").unwrap_or(base);
    let scheme_ok = base.starts_with("https://") || base.starts_with("http://");
    let host = base.split_once("://").map_or("", |(_, rest)| rest);
    if !scheme_ok || host.is_empty() || base.contains(['#', '?', ' ']) {
        return Err(format!(
            "--console-url {console:?}: give the console's address as phones reach it, \
             http(s)://HOST[:PORT]"
        ));
    }
    Ok(format!("{base}/brigada/#token={token}"))
}

/// `text` as a QR code in Unicode half blocks (two modules per character, with the standard
/// quiet zone), drawn light on dark: a terminal's text is light on a dark background, so the
/// code's dark modules are the blank cells. Error correction M (15%): a phone reads it off a
/// screen with glare.
pub fn qr_text(text: &str) -> Result<String, String> {
    use qrcode::render::unicode::Dense1x2;
    let code = qrcode::QrCode::with_error_correction_level(text, qrcode::EcLevel::M)
        .map_err(|e| format!("the sign-in link does not fit a QR code: {e}"))?;
    Ok(code
        .render::<Dense1x2>()
        .dark_color(Dense1x2::Light)
        .light_color(Dense1x2::Dark)
        .quiet_zone(true)
        .build())
}

pub fn run(args: &UnitTokenArgs, json: bool) -> Result<(), String> {
    let unit = centinela_core::ids::BrigadeId::new(args.unit.as_str())
        .map_err(|e| format!("unit {:?}: {e}", args.unit))?;
    let mut random = [0u8; TOKEN_BYTES];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut random))
        .map_err(|e| format!("no randomness: {e}"))?;
    let token: String = random.iter().map(|b| format!("{b:02x}")).collect();
    let link = args
        .console_url
        .as_deref()
        .map(|console| app_url(console, &token))
        .transpose()?;
    let digest = centinela_api::auth::token_digest_hex(&token);
    let entry =
        format!("[[devices]]\nkind = \"unit\"\nid = \"{unit}\"\ntoken_blake2b = \"{digest}\"\n");
    match &args.devices_file {
        Some(path) => {
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| format!("devices file {}: {e}", path.display()))?;
            file.write_all(format!("\n{entry}").as_bytes())
                .map_err(|e| format!("devices file {}: {e}", path.display()))?;
        }
        None => eprint!("{entry}"),
    }
    if let Some(link) = &link {
        eprintln!(
            "\n{}\nScan with the officer's phone, or open: {link}\n",
            qr_text(link)?
        );
    }
    let written = |e: std::io::Error| e.to_string();
    if json {
        print_json(&serde_json::json!({
            "unit": unit.as_str(),
            "token": token,
            "token_blake2b": digest,
            "devices_file": args.devices_file.as_ref().map(|p| p.display().to_string()),
            "app_url": link,
        }))
        .map_err(written)
    } else {
        print_line(&token).map_err(written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads the printed QR code back as a phone camera would: the half blocks turned into a
    /// greyscale picture (dark modules black, four pixels a module), decoded by `rqrr`.
    fn decode(printed: &str) -> String {
        const SCALE: usize = 4;
        // Each character holds two rows of modules; a drawn half is a light module.
        let mut modules: Vec<Vec<bool>> = Vec::new(); // true: dark
        for line in printed.lines() {
            let (mut top, mut bottom) = (Vec::new(), Vec::new());
            for c in line.chars() {
                let (t, b) = match c {
                    ' ' => (false, false),
                    '\u{2580}' => (true, false),
                    '\u{2584}' => (false, true),
                    '\u{2588}' => (true, true),
                    other => panic!("unexpected character {other:?} in the QR code"),
                };
                top.push(!t);
                bottom.push(!b);
            }
            modules.push(top);
            modules.push(bottom);
        }
        let width = modules[0].len();
        // The picture is square: a last half-row below it is the drawing's padding.
        modules.truncate(width);
        assert_eq!(modules.len(), width, "a square code");
        let size = width * SCALE;
        let mut picture = rqrr::PreparedImage::prepare_from_greyscale(size, size, |x, y| {
            if modules[y / SCALE][x / SCALE] {
                0
            } else {
                255
            }
        });
        let grids = picture.detect_grids();
        assert_eq!(grids.len(), 1, "one QR code in the picture");
        grids[0].decode().expect("the code decodes").1
    }

    #[test]
    fn the_qr_code_holds_the_exact_sign_in_link() {
        let token = "0123456789abcdef0123456789abcdef0123456789abcdef";
        let link = app_url("https://centinela.example:8443/", token).unwrap();
        assert_eq!(
            link,
            format!("https://centinela.example:8443/brigada/#token={token}")
        );
        assert_eq!(decode(&qr_text(&link).unwrap()), link);
        // Quiet zone: the outer rows are all light (drawn) cells.
        let printed = qr_text(&link).unwrap();
        assert!(
            printed
                .lines()
                .next()
                .unwrap()
                .chars()
                .all(|c| c == '\u{2588}')
        );
    }

    #[test]
    fn the_console_url_is_checked() {
        assert_eq!(
            app_url("http://127.0.0.1:8080/brigada/", "t").unwrap(),
            "http://127.0.0.1:8080/brigada/#token=t"
        );
        for bad in [
            "",
            "centinela.example",
            "ftp://x",
            "https://",
            "https://x/#a",
            "https://a b",
        ] {
            let e = app_url(bad, "t").unwrap_err();
            assert!(e.contains("--console-url"), "{bad:?}: {e}");
        }
    }
}
