//! A minimal HTTP/1.1 client for the console's JSON API: one request per connection
//! (`Connection: close`), enough to check statuses, headers and bodies without a browser.

use std::net::SocketAddr;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    /// The `name=value` part of the reply's `Set-Cookie`, for the next request's `Cookie`.
    pub fn cookie(&self) -> String {
        self.header("set-cookie")
            .and_then(|c| c.split(';').next())
            .expect("a Set-Cookie header")
            .to_string()
    }
}

/// Sends one request; `body` is sent as JSON when given (`content_type` overrides the type).
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    cookie: Option<&str>,
    body: Option<(&str, &str)>,
) -> Reply {
    let cookie = cookie.map(|c| format!("Cookie: {c}\r\n"));
    request_with(addr, method, path, cookie.as_deref().unwrap_or(""), body).await
}

/// Like [`request`], with `Authorization: Bearer TOKEN` (the brigade app's sign-in).
pub async fn request_as(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: &str,
    json: Option<&str>,
) -> Reply {
    let authorization = format!("Authorization: Bearer {token}\r\n");
    let body = json.map(|j| ("application/json", j));
    request_with(addr, method, path, &authorization, body).await
}

/// Sends one request with `extra` header lines (each ending in CRLF).
async fn request_with(
    addr: SocketAddr,
    method: &str,
    path: &str,
    extra: &str,
    body: Option<(&str, &str)>,
) -> Reply {
    let mut stream = TcpStream::connect(addr)
        .await
        .expect("connect to the console");
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    head.push_str(extra);
    let payload = match body {
        Some((content_type, payload)) => {
            head.push_str(&format!(
                "Content-Type: {content_type}\r\nContent-Length: {}\r\n",
                payload.len()
            ));
            payload
        }
        None => "",
    };
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.expect("send");
    stream.write_all(payload.as_bytes()).await.expect("send");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.expect("read the reply");
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").expect("a complete reply");
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect::<Vec<_>>();
    let chunked = headers.iter().any(|(n, v)| {
        n.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    Reply {
        status,
        headers,
        body,
    }
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

pub async fn get(addr: SocketAddr, path: &str, cookie: Option<&str>) -> Reply {
    request(addr, "GET", path, cookie, None).await
}

pub async fn post(addr: SocketAddr, path: &str, cookie: Option<&str>, json: &str) -> Reply {
    request(addr, "POST", path, cookie, Some(("application/json", json))).await
}
