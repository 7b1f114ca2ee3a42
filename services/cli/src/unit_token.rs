//! `centinela unit-token UNIT`: a unit's credential for the brigade app (docs/brigade-app.md).
//!
//! Draws a fresh random token, prints it (to paste into the app at `/brigada/`, or to hand to
//! the officer), and writes the devices-file entry that lets it act as that unit, holding only
//! the token's BLAKE2b-256 digest (docs/security.md): appended to `--devices-file` when given,
//! else printed on standard error. Nothing keeps the token itself: a lost one is replaced by
//! drawing another and removing the old entry (which revokes it once nodes restart).

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
}

pub fn run(args: &UnitTokenArgs, json: bool) -> Result<(), String> {
    let unit = centinela_core::ids::BrigadeId::new(args.unit.as_str())
        .map_err(|e| format!("unit {:?}: {e}", args.unit))?;
    let mut random = [0u8; TOKEN_BYTES];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut random))
        .map_err(|e| format!("no randomness: {e}"))?;
    let token: String = random.iter().map(|b| format!("{b:02x}")).collect();
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
    let written = |e: std::io::Error| e.to_string();
    if json {
        print_json(&serde_json::json!({
            "unit": unit.as_str(),
            "token": token,
            "token_blake2b": digest,
            "devices_file": args.devices_file.as_ref().map(|p| p.display().to_string()),
        }))
        .map_err(written)
    } else {
        print_line(&token).map_err(written)
    }
}
