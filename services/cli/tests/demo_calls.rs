//! Issue 23, item 5: the demo's buttons talk. In `centinela demo` a press (here `centinela
//! press B01`, as the banner suggests) makes the simulated button call the demo's intercom
//! gateway: the call rings in the console's `GET /api/calls` on the press's incident, with
//! the button's voice flowing to the node. `--mute-buttons` turns the calls off.

mod common;

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::Value;

use centinela_testkit::wait;
use common::Demo;

/// One HTTP/1.1 request on a fresh connection: the whole response's text.
fn http(addr: &str, request: &str) -> Result<String, String> {
    let mut stream = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    stream
        .write_all(request.as_bytes())
        .map_err(|e| e.to_string())?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .map_err(|e| e.to_string())?;
    Ok(response)
}

/// Signs in as the demo operator (`POST /api/login/demo`, what the console page does):
/// the session cookie.
fn demo_session(demo: &Demo) -> String {
    let request = format!(
        "POST /api/login/demo HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}",
        demo.http
    );
    let response = http(&demo.http, &request).unwrap();
    response
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("set-cookie").then(|| {
                value
                    .trim()
                    .split(';')
                    .next()
                    .unwrap_or_default()
                    .to_string()
            })
        })
        .unwrap_or_else(|| panic!("no session cookie: {response}"))
}

/// The calls the console lists.
fn calls(demo: &Demo, cookie: &str) -> Result<Vec<Value>, String> {
    let request = format!(
        "GET /api/calls HTTP/1.1\r\nHost: {}\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n",
        demo.http
    );
    let response = http(&demo.http, &request)?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    if !head.starts_with("HTTP/1.1 200") {
        return Err(format!("GET /api/calls: {response}"));
    }
    let value: Value = serde_json::from_str(body).map_err(|e| format!("{e}: {body}"))?;
    Ok(value["calls"].as_array().cloned().unwrap_or_default())
}

#[test]
fn a_press_in_the_demo_makes_its_button_call_and_ring_in_the_console() {
    let demo = Demo::start(&["--sip", "127.0.0.1:0"]);
    let cookie = demo_session(&demo);
    let pressed = demo.json(&["press", "B01"]);
    let incident = pressed["incident"].as_str().unwrap().to_string();
    let call = wait::until_blocking("B01's call ringing in GET /api/calls", || {
        calls(&demo, &cookie)
            .ok()?
            .into_iter()
            .find(|c| c["button"] == "B01" && c["state"] == "ringing")
    });
    assert_eq!(call["incident"], incident.as_str(), "{call}");
    let log = demo.log().text();
    assert!(
        log.contains("pressed buttons call the intercom gateway"),
        "{log}"
    );
    assert!(log.contains("button calling the node"), "{log}");
}

#[test]
fn muted_buttons_do_not_call() {
    let demo = Demo::start(&["--sip", "127.0.0.1:0", "--mute-buttons"]);
    let pressed = demo.json(&["press", "B01"]);
    assert!(pressed["incident"].is_string(), "{pressed}");
    // The caller is never started (it says so before the banner when it is).
    let log = demo.log().text();
    assert!(
        !log.contains("pressed buttons call the intercom gateway"),
        "{log}"
    );
    let cookie = demo_session(&demo);
    assert_eq!(calls(&demo, &cookie).unwrap(), Vec::<Value>::new());
}
