//! A minimal HTTP/1.1 client for the console's JSON API: one request per connection
//! (`Connection: close`), enough to check statuses, headers and bodies without a browser.

use std::net::{IpAddr, SocketAddr};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

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

/// `GET path` with `extra` header lines (each ending in CRLF), e.g. `Accept-Language`.
pub async fn get_with(addr: SocketAddr, path: &str, extra: &str) -> Reply {
    request_with(addr, "GET", path, extra, None).await
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
    let stream = TcpStream::connect(addr)
        .await
        .expect("connect to the console");
    exchange(stream, addr, method, path, extra, body).await
}

/// `POST`s JSON from the local address `source` (any 127/8 address is this machine: another
/// position's, or an attacker's, address).
pub async fn post_from(
    source: IpAddr,
    addr: SocketAddr,
    path: &str,
    cookie: Option<&str>,
    json: &str,
) -> Reply {
    let socket = TcpSocket::new_v4().expect("a socket");
    socket
        .bind(SocketAddr::new(source, 0))
        .expect("bind a loopback source address");
    let stream = socket.connect(addr).await.expect("connect to the console");
    let cookie = cookie.map(|c| format!("Cookie: {c}\r\n"));
    exchange(
        stream,
        addr,
        "POST",
        path,
        cookie.as_deref().unwrap_or(""),
        Some(("application/json", json)),
    )
    .await
}

async fn exchange(
    mut stream: TcpStream,
    addr: SocketAddr,
    method: &str,
    path: &str,
    extra: &str,
    body: Option<(&str, &str)>,
) -> Reply {
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

/// A WebSocket handshake for `path`: the reply's status and headers, and the first bytes the
/// server sent after them (the first WebSocket frame when it switched protocols).
pub async fn upgrade(
    addr: SocketAddr,
    path: &str,
    cookie: Option<&str>,
    origin: Option<&str>,
) -> Reply {
    let mut stream = TcpStream::connect(addr)
        .await
        .expect("connect to the console");
    let mut head = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    );
    if let Some(cookie) = cookie {
        head.push_str(&format!("Cookie: {cookie}\r\n"));
    }
    if let Some(origin) = origin {
        head.push_str(&format!("Origin: {origin}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.expect("send");
    // The connection stays open (an upgrade, or keep-alive): read the head, then the body
    // its Content-Length announces, or the first frame of a switched connection.
    let mut raw = Vec::new();
    let mut buffer = [0u8; 4096];
    let deadline = std::time::Duration::from_secs(30);
    loop {
        let text = String::from_utf8_lossy(&raw).to_string();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .filter_map(|l| l.split_once(':'))
                .find(|(n, _)| n.trim().eq_ignore_ascii_case("content-length"))
                .and_then(|(_, v)| v.trim().parse::<usize>().ok());
            let switched = head.starts_with("HTTP/1.1 101");
            let complete = match length {
                Some(length) => body.len() >= length,
                None => switched && body.len() >= 2,
            };
            if complete {
                break;
            }
        }
        let n = tokio::time::timeout(deadline, stream.read(&mut buffer))
            .await
            .expect("the reply within the deadline")
            .expect("read the reply");
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&buffer[..n]);
    }
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete head");
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
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
    let rest = &raw[split + 4..];
    // A switched connection's first frame: an unmasked text frame shorter than 126 bytes
    // carries its payload after two bytes.
    let body = if status == 101 && rest.len() >= 2 && rest[0] == 0x81 && rest[1] < 126 {
        let mut frame = rest.to_vec();
        while frame.len() < 2 + usize::from(rest[1]) {
            let n = tokio::time::timeout(deadline, stream.read(&mut buffer))
                .await
                .expect("the frame within the deadline")
                .expect("read the frame");
            assert!(n > 0, "closed inside the first frame");
            frame.extend_from_slice(&buffer[..n]);
        }
        String::from_utf8_lossy(&frame[2..2 + usize::from(rest[1])]).to_string()
    } else {
        String::from_utf8_lossy(rest).to_string()
    };
    Reply {
        status,
        headers,
        body,
    }
}
