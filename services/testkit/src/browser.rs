//! Headless Chromium for browser tests, and a small Chrome DevTools Protocol client: just
//! enough to drive Debian's Chromium like an operator would (navigate, click, type, press keys,
//! read the DOM, screenshot).
//!
//! Why CDP over a WebSocket rather than WebDriver: one process (Chromium itself) instead of
//! Chromium plus a version-matched chromedriver, one small dev-dependency
//! (`tokio-tungstenite`, no TLS), and the page's own exceptions and console errors arrive as
//! events, so a test can fail on a script error it would otherwise never see.
//!
//! Chromium is started with a fresh profile and the flags this machine needs (no background
//! networking: the sandbox has no internet) and `--remote-debugging-port=0`; the DevTools
//! address is read from its stderr. The process is killed when the [`Browser`] drops, also when
//! the test panics.
//!
//! Without Chromium, [`chromium`] skips the test (`None`, with a printed reason), except under
//! CI (`CI` set), where the test fails.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;

use crate::wait::Wait;

/// How long Chromium may take to start and print its DevTools address.
const LAUNCH_TIMEOUT: Duration = Duration::from_secs(60);
/// How long one protocol command may take (a screenshot of a busy page is the slowest).
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Result<Value, String>>>>>;

/// Where Chromium is: `CENTINELA_CHROMIUM`, else Debian's `/usr/bin/chromium`, else `chromium`
/// on the PATH.
pub fn chromium_path() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("CENTINELA_CHROMIUM") {
        return Some(PathBuf::from(path));
    }
    let debian = Path::new("/usr/bin/chromium");
    if debian.exists() {
        return Some(debian.to_path_buf());
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("chromium"))
            .find(|candidate| candidate.exists())
    })
}

/// Chromium, or `None` (skip, saying why) outside CI; under CI a missing browser fails the test.
pub fn chromium() -> Option<PathBuf> {
    match chromium_path() {
        Some(path) => Some(path),
        None if std::env::var_os("CI").is_some() => {
            panic!(
                "CI is set but Chromium is missing: apt-get install chromium (scripts/test.sh does)"
            )
        }
        None => {
            eprintln!("SKIPPED: no Chromium (apt-get install chromium, or set CENTINELA_CHROMIUM)");
            None
        }
    }
}

/// Chromium's fake microphone (a beep), granted without asking, and WebRTC over the
/// loopback interface (a test's node listens on 127.0.0.1).
pub const FAKE_MEDIA: &[&str] = &[
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--allow-loopback-in-peer-connection",
];

/// A running headless Chromium and the connection to it.
pub struct Browser {
    child: Child,
    _profile: tempfile::TempDir,
    outbox: mpsc::UnboundedSender<Message>,
    next_id: AtomicU64,
    pending: Pending,
    /// Uncaught page exceptions and console errors, for the test to check.
    pub problems: Arc<Mutex<Vec<String>>>,
    /// Where a failed wait leaves a screenshot of the page (`wait-failure.png`).
    pub failure_dir: Option<PathBuf>,
}

impl Browser {
    pub async fn launch(chromium: &Path, failure_dir: Option<PathBuf>) -> Browser {
        Self::launch_with(chromium, failure_dir, &[]).await
    }

    /// [`Browser::launch`] with more command-line switches (the calls test's fake
    /// microphone: [`FAKE_MEDIA`]).
    pub async fn launch_with(
        chromium: &Path,
        failure_dir: Option<PathBuf>,
        switches: &[&str],
    ) -> Browser {
        let profile = tempfile::tempdir().expect("a temporary profile directory");
        let mut child = Command::new(chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-extensions",
                "--mute-audio",
                "--autoplay-policy=no-user-gesture-required",
                "--remote-debugging-port=0",
                "--window-size=1366,768",
            ])
            .args(switches)
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", chromium.display()));
        let stderr = child.stderr.take().expect("piped stderr");
        let mut lines = BufReader::new(stderr).lines();
        let ws_url = tokio::time::timeout(LAUNCH_TIMEOUT, async {
            let mut seen = Vec::new();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(url) = line.strip_prefix("DevTools listening on ") {
                    return url.trim().to_string();
                }
                seen.push(line);
            }
            panic!("chromium exited before listening:\n{}", seen.join("\n"));
        })
        .await
        .expect("chromium prints its DevTools address");
        // Keep draining stderr so Chromium never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });

        let (socket, _) = tokio_tungstenite::connect_async(ws_url.as_str())
            .await
            .expect("connect to chromium's DevTools");
        let (mut sink, mut stream) = socket.split();
        let (outbox, mut outgoing) = mpsc::unbounded_channel::<Message>();
        tokio::spawn(async move {
            while let Some(message) = outgoing.recv().await {
                if sink.send(message).await.is_err() {
                    return;
                }
            }
        });
        let pending: Pending = Arc::default();
        let problems: Arc<Mutex<Vec<String>>> = Arc::default();
        {
            let pending = pending.clone();
            let problems = problems.clone();
            tokio::spawn(async move {
                while let Some(Ok(message)) = stream.next().await {
                    let Message::Text(text) = message else {
                        continue;
                    };
                    let Ok(value) = serde_json::from_str::<Value>(text.as_str()) else {
                        continue;
                    };
                    if let Some(id) = value.get("id").and_then(Value::as_u64) {
                        let reply = match value.get("error") {
                            Some(error) => Err(error.to_string()),
                            None => Ok(value.get("result").cloned().unwrap_or(Value::Null)),
                        };
                        if let Some(waiter) = pending.lock().unwrap().remove(&id) {
                            let _ = waiter.send(reply);
                        }
                    } else {
                        note_problem(&value, &problems);
                    }
                }
            });
        }
        Browser {
            child,
            _profile: profile,
            outbox,
            next_id: AtomicU64::new(1),
            pending,
            problems,
            failure_dir,
        }
    }

    /// Sends one command (to a page when `session` is given) and waits for its result.
    pub async fn call(
        &self,
        session: Option<&str>,
        method: &str,
        params: Value,
    ) -> Result<Value, String> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut message = json!({ "id": id, "method": method, "params": params });
        if let Some(session) = session {
            message["sessionId"] = json!(session);
        }
        let (tx, rx) = oneshot::channel();
        self.pending.lock().unwrap().insert(id, tx);
        self.outbox
            .send(Message::Text(message.to_string().into()))
            .map_err(|_| "the DevTools connection is closed".to_string())?;
        match tokio::time::timeout(CALL_TIMEOUT, rx).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(_)) => Err(format!("{method}: connection closed")),
            Err(_) => Err(format!("{method}: no answer in {CALL_TIMEOUT:?}")),
        }
    }

    /// A new tab with a 1366×768 viewport (the smallest screen the console is built for).
    pub async fn new_page(&self) -> Page<'_> {
        let target = self
            .call(None, "Target.createTarget", json!({ "url": "about:blank" }))
            .await
            .expect("create a tab");
        let target_id = target["targetId"]
            .as_str()
            .expect("a target id")
            .to_string();
        let attached = self
            .call(
                None,
                "Target.attachToTarget",
                json!({ "targetId": target_id, "flatten": true }),
            )
            .await
            .expect("attach to the tab");
        let session = attached["sessionId"]
            .as_str()
            .expect("a session id")
            .to_string();
        let page = Page {
            browser: self,
            session,
        };
        for domain in ["Page.enable", "Runtime.enable", "Log.enable"] {
            page.call(domain, json!({})).await.expect(domain);
        }
        page.call(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": 1366, "height": 768, "deviceScaleFactor": 1, "mobile": false }),
        )
        .await
        .expect("set the viewport");
        page
    }

    pub async fn close(mut self) {
        let _ = tokio::time::timeout(
            Duration::from_secs(5),
            self.call(None, "Browser.close", json!({})),
        )
        .await;
        if tokio::time::timeout(Duration::from_secs(5), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

/// Records page exceptions and console errors (`Runtime.exceptionThrown`,
/// `Runtime.consoleAPICalled` with type error, `Log.entryAdded` errors such as CSP refusals).
fn note_problem(event: &Value, problems: &Mutex<Vec<String>>) {
    let params = &event["params"];
    let problem = match event["method"].as_str() {
        Some("Runtime.exceptionThrown") => Some(format!(
            "exception: {} {}",
            params["exceptionDetails"]["text"],
            params["exceptionDetails"]["exception"]["description"]
        )),
        Some("Runtime.consoleAPICalled") if params["type"] == "error" => {
            Some(format!("console.error: {}", params["args"]))
        }
        Some("Log.entryAdded") if params["entry"]["level"] == "error" => {
            let text = params["entry"]["text"].as_str().unwrap_or_default();
            let url = params["entry"]["url"].as_str().unwrap_or_default();
            // A reconnecting EventSource or a refused sign-in logs failed requests; those are
            // the page working as designed, not script errors.
            let expected = text.contains("Failed to load resource") || url.contains("/api/");
            (!expected).then(|| format!("log: {text} {url}"))
        }
        _ => None,
    };
    if let Some(problem) = problem {
        problems.lock().unwrap().push(problem);
    }
}

/// One tab.
pub struct Page<'b> {
    browser: &'b Browser,
    session: String,
}

impl Page<'_> {
    pub async fn call(&self, method: &str, params: Value) -> Result<Value, String> {
        self.browser.call(Some(&self.session), method, params).await
    }

    /// Evaluates `expression` in the page (awaiting a promise); its JSON value.
    pub async fn eval(&self, expression: &str) -> Result<Value, String> {
        let reply = self
            .call(
                "Runtime.evaluate",
                json!({ "expression": expression, "returnByValue": true, "awaitPromise": true }),
            )
            .await?;
        if let Some(details) = reply.get("exceptionDetails") {
            return Err(format!("{expression}: {details}"));
        }
        Ok(reply["result"]["value"].clone())
    }

    /// Waits until `expression` is truthy (errors count as not yet: the page may be
    /// navigating); its value. Panics naming `what` after `deadline`.
    pub async fn wait_for(&self, what: &str, expression: &str, deadline: Duration) -> Value {
        let outcome = Wait::up_to(deadline)
            .try_until(|| async {
                match self.eval(expression).await {
                    Ok(value) if truthy(&value) => Ok(value),
                    Ok(value) => Err(value),
                    Err(e) => Err(json!(e)),
                }
            })
            .await;
        match outcome {
            Ok(value) => value,
            Err(last) => {
                if let Some(dir) = &self.browser.failure_dir {
                    let shot = dir.join("wait-failure.png");
                    self.screenshot(&shot).await;
                    eprintln!("page at the failure: {}", shot.display());
                }
                let url = self.eval("location.href").await.unwrap_or_default();
                let last = last.unwrap_or_default();
                panic!("waited {deadline:?} for {what} ({expression}) at {url}; last: {last}");
            }
        }
    }

    /// Loads `url` and waits until the new document has loaded.
    pub async fn goto(&self, url: &str) {
        // A marker on the old document: gone once the new one is in place.
        let _ = self.eval("window.__leaving = true").await;
        self.call("Page.navigate", json!({ "url": url }))
            .await
            .unwrap_or_else(|e| panic!("navigate to {url}: {e}"));
        self.wait_for(
            &format!("{url} to load"),
            "!window.__leaving && document.readyState === 'complete'",
            Duration::from_secs(30),
        )
        .await;
    }

    /// Clicks the first element matching `selector`, once it is enabled, visible and not
    /// covered by anything at its centre (so a person could click it): pointer and mouse
    /// events, then `click`, dispatched on the element.
    ///
    /// Not mouse input at screen coordinates: the console re-renders as the cluster changes
    /// (brigades move every second), and a position read one frame earlier can point at
    /// something else by the time the browser handles the input; the test would then click
    /// the wrong thing, or nothing, at random.
    pub async fn click(&self, selector: &str) {
        let selector_js = serde_json::to_string(selector).unwrap();
        self.wait_for(
            &format!("{selector} to be clickable"),
            &format!(
                "(() => {{ const el = document.querySelector({selector_js});
                    if (!el || el.disabled) return false;
                    el.scrollIntoView({{ block: 'nearest' }});
                    const r = el.getBoundingClientRect();
                    if (r.width === 0 || r.height === 0) return false;
                    const x = r.x + r.width / 2, y = r.y + r.height / 2;
                    const top = document.elementFromPoint(x, y);
                    if (!top || !(el === top || el.contains(top))) return false;
                    const at = {{ bubbles: true, cancelable: true, composed: true, button: 0,
                                  clientX: x, clientY: y, view: window }};
                    const pointer = {{ ...at, pointerId: 1, pointerType: 'mouse', isPrimary: true }};
                    top.dispatchEvent(new PointerEvent('pointerdown', pointer));
                    top.dispatchEvent(new MouseEvent('mousedown', at));
                    if (top.focus) top.focus();
                    top.dispatchEvent(new PointerEvent('pointerup', pointer));
                    top.dispatchEvent(new MouseEvent('mouseup', at));
                    top.click();
                    return true; }})()"
            ),
            Duration::from_secs(10),
        )
        .await;
    }

    /// Types `text` into the element matching `selector` (focused by a click first).
    pub async fn type_into(&self, selector: &str, text: &str) {
        self.click(selector).await;
        self.call("Input.insertText", json!({ "text": text }))
            .await
            .unwrap_or_else(|e| panic!("type into {selector}: {e}"));
    }

    /// Presses and releases one printable key (`"a"`, `"n"`).
    pub async fn key(&self, key: char) {
        let code = format!("Key{}", key.to_ascii_uppercase());
        let vk = key.to_ascii_uppercase() as u32;
        self.call(
            "Input.dispatchKeyEvent",
            json!({ "type": "keyDown", "key": key.to_string(), "text": key.to_string(),
                    "code": code, "windowsVirtualKeyCode": vk }),
        )
        .await
        .expect("key down");
        self.call(
            "Input.dispatchKeyEvent",
            json!({ "type": "keyUp", "key": key.to_string(), "code": code, "windowsVirtualKeyCode": vk }),
        )
        .await
        .expect("key up");
    }

    /// Saves a PNG of the viewport to `path`.
    pub async fn screenshot(&self, path: &Path) {
        let shot = self
            .call("Page.captureScreenshot", json!({ "format": "png" }))
            .await
            .expect("capture a screenshot");
        let data = shot["data"].as_str().expect("screenshot data");
        let png = base64_decode(data).expect("screenshot is base64");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("create the artifacts directory");
        }
        std::fs::write(path, png).expect("write the screenshot");
    }
}

fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|n| n != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

/// Standard base64 (what CDP sends screenshots in).
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let mut buffer = 0u32;
    let mut bits = 0;
    for byte in text.bytes() {
        let value = match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            b'\n' | b'\r' => continue,
            _ => return None,
        };
        buffer = (buffer << 6) | u32::from(value);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    Some(out)
}
