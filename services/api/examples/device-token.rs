//! Makes a device's credential: a fresh random token for the device, and the entry of the
//! devices file (`CENTINELA_DEVICES_FILE`) that lets it act as itself, holding only the
//! token's BLAKE2b-256 digest (docs/security.md).
//!
//! ```sh
//! cargo run -p centinela-api --example device-token -- button B01 >> devices.toml
//! ```
//!
//! The token goes to standard error, to be provisioned on the device; the entry to standard
//! output.

use std::io::Read;
use std::process::ExitCode;

/// Random bytes per token: 192 bits, far beyond guessing.
const TOKEN_BYTES: usize = 24;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [kind, id] = args.as_slice() else {
        eprintln!("usage: device-token button|camera|unit ID");
        return ExitCode::from(2);
    };
    if !matches!(kind.as_str(), "button" | "camera" | "unit") {
        eprintln!("error: kind {kind:?} is not button, camera or unit");
        return ExitCode::from(2);
    }
    if let Err(e) = centinela_core::ids::ButtonId::new(id.as_str()) {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    let mut random = [0u8; TOKEN_BYTES];
    if let Err(e) = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut random))
    {
        eprintln!("error: no randomness: {e}");
        return ExitCode::FAILURE;
    }
    let token: String = random.iter().map(|b| format!("{b:02x}")).collect();
    eprintln!("token for {kind} {id} (provision it on the device; it is not stored): {token}");
    println!(
        "[[devices]]\nkind = \"{kind}\"\nid = \"{id}\"\ntoken_blake2b = \"{}\"\n",
        centinela_api::auth::token_digest_hex(&token)
    );
    ExitCode::SUCCESS
}
