//! SIP messages: a request parsed with `ezk-sip-types` (the grammar is theirs), and the
//! responses the gateway writes back, echoing the request's dialog headers as RFC 3261 §8.2.6
//! says.

use std::fmt::Write as _;

use bytes::Bytes;
use bytesstr::BytesStr;
use ezk_sip_types::header::typed::{AuthResponse, CSeq, CallID, ContentLength, FromTo};
use ezk_sip_types::msg::{Line, MessageLine, PullParser};
use ezk_sip_types::parse::Parse as _;
use ezk_sip_types::uri::SipUriUserPart;
use ezk_sip_types::{Headers, Method, Name};

use crate::limits::MESSAGE_LEN_MAX;

/// Why a message could not be taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Not SIP at all, or a request without the headers a response needs: dropped (and
    /// counted), since there is nobody to answer.
    #[error("unparseable: {0}")]
    Unparseable(String),
    /// A response (to a request we sent): not a request to answer.
    #[error("a response")]
    Response,
}

/// What a response answers: its status code, and the transaction it belongs to (Call-ID and
/// CSeq's method; our one client transaction is the BYE of an operator's hang-up).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub code: u16,
    pub call_id: String,
    pub method: Method,
}

/// A response, parsed with the same grammar as requests; `None` when it is no response or
/// lacks Call-ID or CSeq (dropped: nothing waits for it).
pub fn parse_response(message: &Bytes) -> Option<Answer> {
    if message.len() > MESSAGE_LEN_MAX {
        return None;
    }
    let mut parser = PullParser::new(message.as_ref(), 0);
    let first = std::str::from_utf8(parser.next()?.ok()?).ok()?;
    let (_, MessageLine::Response(line)) = MessageLine::parse(message)(first).ok()? else {
        return None;
    };
    let mut headers = Headers::new();
    for raw in parser.by_ref() {
        let raw = std::str::from_utf8(raw.ok()?).ok()?;
        if let Ok((_, line)) = Line::parse(message, raw) {
            headers.insert(line.name, line.value);
        }
    }
    let cseq = headers.get_named::<CSeq>().ok()?;
    let call_id = headers.get_named::<CallID>().ok()?;
    Some(Answer {
        code: line.code.into_u16(),
        call_id: call_id.0.to_string(),
        method: cseq.method,
    })
}

/// The headers a response copies from its request.
#[derive(Debug, Clone)]
pub struct Echo {
    /// Every `Via` value, in order.
    pub via: Vec<BytesStr>,
    pub from: BytesStr,
    pub to: BytesStr,
    pub call_id: BytesStr,
    pub cseq: BytesStr,
}

/// A request, its dialog headers checked present.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: Method,
    /// The request-URI as sent.
    pub uri: String,
    pub headers: Headers,
    pub echo: Echo,
    /// The CSeq's number (the method is the request's own).
    pub cseq: u32,
    pub body: Bytes,
}

impl Request {
    pub fn call_id(&self) -> &str {
        &self.echo.call_id
    }

    /// The user part of `From` (a button's id, by the contract), if any.
    pub fn from_user(&self) -> Option<String> {
        let from: FromTo = self.headers.get(Name::FROM).ok()?;
        match &from.uri.uri.user_part {
            SipUriUserPart::User(user) => Some(user.to_string()),
            SipUriUserPart::UserPw(user) => Some(user.user.to_string()),
            SipUriUserPart::Empty => None,
        }
    }

    /// The `To` header carries a tag: a request inside a dialog.
    pub fn to_has_tag(&self) -> bool {
        self.headers
            .get::<FromTo>(Name::TO)
            .is_ok_and(|to| to.tag.is_some())
    }

    /// The digest credentials, if the request carries some.
    pub fn authorization(&self) -> Option<AuthResponse> {
        self.headers.get(Name::AUTHORIZATION).ok()
    }

    /// The `Content-Type`'s media type, lowercase, without parameters.
    pub fn content_type(&self) -> Option<String> {
        let raw = self.headers.get_raw(&Name::CONTENT_TYPE).next()?;
        Some(
            raw.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase(),
        )
    }
}

/// The length of the first whole message in `buffer` (a TCP stream), `Ok(None)` while it is
/// incomplete. A head without `Content-Length` has no body, as RFC 3261 §18.3 requires of
/// stream transports' senders.
pub fn frame_len(buffer: &[u8]) -> Result<Option<usize>, Error> {
    let mut parser = PullParser::new(buffer, 0);
    let mut content_length = 0usize;
    loop {
        match parser.next() {
            None => break,
            Some(Err(_)) => {
                if buffer.len() > MESSAGE_LEN_MAX {
                    return Err(Error::Unparseable(format!(
                        "no end of message head within {MESSAGE_LEN_MAX} bytes"
                    )));
                }
                return Ok(None);
            }
            Some(Ok(line)) => {
                let Ok(line) = std::str::from_utf8(line) else {
                    return Err(Error::Unparseable("a header line is not UTF-8".into()));
                };
                let Some((name, value)) = line.split_once(':') else {
                    continue;
                };
                let name = name.trim();
                if name.eq_ignore_ascii_case("content-length") || name.eq_ignore_ascii_case("l") {
                    content_length = value.trim().parse().map_err(|_| {
                        Error::Unparseable(format!("Content-Length {:?}", value.trim()))
                    })?;
                }
            }
        }
    }
    let total = parser.head_end() + content_length;
    if total > MESSAGE_LEN_MAX {
        return Err(Error::Unparseable(format!(
            "a message of {total} bytes, at most {MESSAGE_LEN_MAX}"
        )));
    }
    Ok((buffer.len() >= total).then_some(total))
}

/// Parses one whole message. A request that parses but is wrong in itself (a bad header
/// value, a body shorter than its `Content-Length`) comes back as `Ok` with the problem in
/// the second field, so the caller can answer it with 400.
pub fn parse(message: Bytes) -> Result<(Request, Option<String>), Error> {
    if message.len() > MESSAGE_LEN_MAX {
        return Err(Error::Unparseable(format!(
            "{} bytes, at most {MESSAGE_LEN_MAX}",
            message.len()
        )));
    }
    let text =
        std::str::from_utf8(&message).map_err(|_| Error::Unparseable("not UTF-8 text".into()))?;
    let mut parser = PullParser::new(message.as_ref(), 0);
    let first = match parser.next() {
        Some(Ok(line)) => line,
        _ => return Err(Error::Unparseable("no complete first line".into())),
    };
    let first = std::str::from_utf8(first)
        .map_err(|_| Error::Unparseable("first line not UTF-8".into()))?;
    let line = match MessageLine::parse(&message)(first) {
        Ok((_, line)) => line,
        Err(_) => return Err(Error::Unparseable(format!("first line {first:?}"))),
    };
    let MessageLine::Request(line) = line else {
        return Err(Error::Response);
    };
    let mut headers = Headers::new();
    let mut problem = None;
    for raw in parser.by_ref() {
        let Ok(raw) = raw else {
            return Err(Error::Unparseable("incomplete message head".into()));
        };
        let raw = std::str::from_utf8(raw)
            .map_err(|_| Error::Unparseable("a header line is not UTF-8".into()))?;
        match Line::parse(&message, raw) {
            Ok((_, line)) => headers.insert(line.name, line.value),
            Err(_) => {
                problem.get_or_insert_with(|| format!("header line {raw:?}"));
            }
        }
    }
    let head_end = parser.head_end().min(text.len());
    let mut body = message.slice(head_end..);
    match headers.try_get_named::<ContentLength>() {
        Some(Ok(ContentLength(len))) => {
            if len > body.len() {
                problem.get_or_insert_with(|| {
                    format!("Content-Length {len} but {} bytes of body", body.len())
                });
            } else {
                body = body.slice(..len);
            }
        }
        Some(Err(_)) => {
            problem.get_or_insert_with(|| "Content-Length is not a number".into());
        }
        None => {}
    }
    let raw = |name: &Name| headers.get_raw(name).next().cloned();
    let (Some(from), Some(to), Some(call_id), Some(cseq_raw)) = (
        raw(&Name::FROM),
        raw(&Name::TO),
        raw(&Name::CALL_ID),
        raw(&Name::CSEQ),
    ) else {
        return Err(Error::Unparseable(
            "a request without From, To, Call-ID or CSeq".into(),
        ));
    };
    let via: Vec<BytesStr> = headers.get_raw(&Name::VIA).cloned().collect();
    if via.is_empty() {
        return Err(Error::Unparseable("a request without Via".into()));
    }
    let mut cseq_number = 0;
    match headers.get_named::<CSeq>() {
        Ok(cseq) if cseq.method == line.method => cseq_number = cseq.cseq,
        Ok(cseq) => {
            problem.get_or_insert_with(|| {
                format!("CSeq method {} is not {}", cseq.method, line.method)
            });
        }
        Err(_) => {
            problem.get_or_insert_with(|| format!("CSeq {cseq_raw:?}"));
        }
    }
    if headers.get_named::<CallID>().is_err() {
        problem.get_or_insert_with(|| "Call-ID".into());
    }
    for name in [Name::FROM, Name::TO] {
        if headers.get::<FromTo>(name.clone()).is_err() {
            problem.get_or_insert_with(|| format!("{} is not a SIP address", name.as_print_str()));
        }
    }
    let uri = text
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_string();
    let echo = Echo {
        via,
        from,
        to,
        call_id,
        cseq: cseq_raw,
    };
    Ok((
        Request {
            method: line.method,
            uri,
            headers,
            echo,
            cseq: cseq_number,
            body,
        },
        problem,
    ))
}

/// A response to write: status, the request's echoed headers, extra headers, a body.
#[derive(Debug, Clone)]
pub struct Response {
    pub code: u16,
    pub reason: String,
    /// A tag for `To`, when the request's has none (every final response but 100 carries one).
    pub to_tag: Option<String>,
    pub headers: Vec<(&'static str, String)>,
    /// `application/sdp` when present.
    pub sdp: Option<String>,
}

impl Response {
    pub fn new(code: u16, reason: impl Into<String>) -> Self {
        Self {
            code,
            reason: reason.into(),
            to_tag: None,
            headers: Vec::new(),
            sdp: None,
        }
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub fn tag(mut self, tag: &str) -> Self {
        self.to_tag = Some(tag.to_string());
        self
    }

    pub fn sdp(mut self, sdp: String) -> Self {
        self.sdp = Some(sdp);
        self
    }

    /// The bytes of this response to `echo`'s request. The reason phrase is kept to one
    /// printable line whatever it was built from.
    pub fn render(&self, echo: &Echo) -> Bytes {
        let reason: String = self
            .reason
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        let mut out = String::with_capacity(512);
        let _ = write!(out, "SIP/2.0 {} {}\r\n", self.code, reason);
        for via in &echo.via {
            let _ = write!(out, "Via: {via}\r\n");
        }
        let _ = write!(out, "From: {}\r\n", echo.from);
        match &self.to_tag {
            Some(tag) if !echo.to.contains(";tag=") => {
                let _ = write!(out, "To: {};tag={tag}\r\n", echo.to);
            }
            _ => {
                let _ = write!(out, "To: {}\r\n", echo.to);
            }
        }
        let _ = write!(out, "Call-ID: {}\r\n", echo.call_id);
        let _ = write!(out, "CSeq: {}\r\n", echo.cseq);
        let _ = write!(out, "Server: centinela\r\n");
        for (name, value) in &self.headers {
            let _ = write!(out, "{name}: {value}\r\n");
        }
        match &self.sdp {
            Some(sdp) => {
                let _ = write!(
                    out,
                    "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
                    sdp.len()
                );
            }
            None => out.push_str("Content-Length: 0\r\n\r\n"),
        }
        Bytes::from(out)
    }
}

/// The methods the gateway answers (`Allow`).
pub const ALLOW: &str = "INVITE, ACK, BYE, CANCEL, OPTIONS, REGISTER";

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &str = "INVITE sip:centinela@127.0.0.1:5060 SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1\r\n\
Via: SIP/2.0/UDP 10.0.0.9:5070;branch=z9hG4bK-0\r\n\
Max-Forwards: 70\r\n\
From: <sip:B01@127.0.0.1>;tag=abc\r\n\
To: <sip:centinela@127.0.0.1>\r\n\
Call-ID: call-1@127.0.0.1\r\n\
CSeq: 1 INVITE\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 4\r\n\r\nv=0\n";

    #[test]
    fn responses_name_their_transaction() {
        let text = "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKx\r\n\
From: <sip:centinela@127.0.0.1>;tag=a\r\nTo: <sip:B01@127.0.0.1>;tag=b\r\n\
Call-ID: c-1@host\r\nCSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n";
        let answer = parse_response(&Bytes::from(text)).unwrap();
        assert_eq!(answer.code, 200);
        assert_eq!(answer.call_id, "c-1@host");
        assert_eq!(answer.method, Method::BYE);
        let request = "OPTIONS sip:x@y SIP/2.0\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n\r\n";
        assert_eq!(parse_response(&Bytes::from(request)), None);
        let no_cseq = "SIP/2.0 200 OK\r\nCall-ID: c\r\n\r\n";
        assert_eq!(parse_response(&Bytes::from(no_cseq)), None);
    }

    #[test]
    fn a_request_parses_and_its_response_echoes_its_dialog_headers() {
        let (request, problem) = parse(Bytes::from_static(INVITE.as_bytes())).unwrap();
        assert_eq!(problem, None);
        assert_eq!(request.method, Method::INVITE);
        assert_eq!(request.from_user().as_deref(), Some("B01"));
        assert_eq!(request.call_id(), "call-1@127.0.0.1");
        assert_eq!(request.cseq, 1);
        assert_eq!(&request.body[..], b"v=0\n");
        assert!(!request.to_has_tag());
        let text = Response::new(200, "OK").tag("t1").render(&request.echo);
        let text = std::str::from_utf8(&text).unwrap();
        assert!(text.starts_with("SIP/2.0 200 OK\r\n"));
        assert!(text.contains(
            "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1\r\nVia: SIP/2.0/UDP 10.0.0.9:5070"
        ));
        assert!(text.contains("To: <sip:centinela@127.0.0.1>;tag=t1\r\n"));
        assert!(text.ends_with("Content-Length: 0\r\n\r\n"));
    }

    #[test]
    fn framing_waits_for_the_body_and_refuses_oversized_messages() {
        let bytes = INVITE.as_bytes();
        assert_eq!(frame_len(&bytes[..bytes.len() - 2]).unwrap(), None);
        assert_eq!(frame_len(bytes).unwrap(), Some(bytes.len()));
        let huge = INVITE.replace("Content-Length: 4", "Content-Length: 99999");
        assert!(frame_len(huge.as_bytes()).is_err());
    }

    #[test]
    fn garbage_is_unparseable_and_a_bad_header_is_a_problem_to_answer() {
        assert!(matches!(
            parse(Bytes::from_static(b"\x00\x01hello")),
            Err(Error::Unparseable(_))
        ));
        let no_call_id = INVITE.replace("Call-ID: call-1@127.0.0.1\r\n", "");
        assert!(matches!(
            parse(Bytes::from(no_call_id)),
            Err(Error::Unparseable(_))
        ));
        let bad_cseq = INVITE.replace("CSeq: 1 INVITE", "CSeq: one INVITE");
        let (_, problem) = parse(Bytes::from(bad_cseq)).unwrap();
        assert!(problem.unwrap().contains("CSeq"));
    }
}
