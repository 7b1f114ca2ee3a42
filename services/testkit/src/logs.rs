//! What happens to a test process's output when it ends: saved to a file, and its tail printed
//! when the test failed (the test thread is panicking), so a red run shows why.

use std::path::{Path, PathBuf};

/// Lines of a process's output printed when a test fails (the whole log is saved).
pub const TAIL: usize = 150;

/// Saves `text` as `{dir}/{name}.log` (when `dir` is given) and, when the current thread is
/// panicking, prints its last [`TAIL`] lines under a header naming `name` and the file.
pub fn finish(name: &str, text: &str, dir: Option<&Path>) -> Option<PathBuf> {
    let path = dir.map(|dir| {
        let path = dir.join(format!("{name}.log"));
        let _ = std::fs::create_dir_all(dir).and_then(|()| std::fs::write(&path, text));
        path
    });
    if std::thread::panicking() {
        let lines: Vec<&str> = text.lines().collect();
        let saved = path
            .as_ref()
            .map(|p| format!("; all in {}", p.display()))
            .unwrap_or_default();
        eprintln!(
            "--- {name} (last {} of {} lines{saved}) ---",
            TAIL.min(lines.len()),
            lines.len(),
        );
        for line in &lines[lines.len().saturating_sub(TAIL)..] {
            eprintln!("{line}");
        }
    }
    path
}
