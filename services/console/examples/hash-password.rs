//! Prints the argon2id hash of a password, for the operators configuration
//! (`CENTINELA_OPERATORS` / `CENTINELA_OPERATORS_FILE`; see docs/console.md).
//!
//! ```sh
//! cargo run -p centinela-console --example hash-password   # then type the password, Enter
//! ```
//!
//! The password is read from standard input (one line), never from the command line, so it
//! does not end up in the shell's history or the process list.

use std::io::BufRead;
use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!("password (one line, then Enter):");
    let mut line = String::new();
    if let Err(e) = std::io::stdin().lock().read_line(&mut line) {
        eprintln!("error: cannot read the password: {e}");
        return ExitCode::FAILURE;
    }
    let password = line.trim_end_matches(['\r', '\n']);
    if password.is_empty() {
        eprintln!("error: empty password");
        return ExitCode::FAILURE;
    }
    match centinela_console::auth::hash_password(password) {
        Ok(hash) => {
            println!("{hash}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
