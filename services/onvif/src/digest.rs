//! HTTP Digest access authentication (RFC 7616), what cameras protect their snapshot URI with
//! (ONVIF names the URI; fetching it is plain HTTP, outside WS-Security): the camera answers
//! `401` with one `WWW-Authenticate: Digest ...` challenge per algorithm it takes (SHA-256
//! first on current firmware, MD5 for old clients), and the client answers the strongest one
//! it knows with an `Authorization: Digest ...` whose `response` proves the password without
//! sending it.
//!
//! Both ends are here, as for the SOAP messages: [`Challenge`] (parsed by the client, written
//! by the camera) and [`Credentials`] (written by the client, parsed and checked by the
//! camera). Only `qop=auth` and the MD5 and SHA-256 algorithms are spoken (no `-sess`, no
//! `auth-int`, no `userhash`): what cameras offer. This module draws no randomness: the
//! client's `cnonce` and the camera's nonces come from the caller.

use md5::Md5;
use sha2::{Digest as _, Sha256};

/// The hash a challenge names (`algorithm=`; absent means MD5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Algorithm {
    Md5,
    Sha256,
}

impl Algorithm {
    /// The name in headers.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
        }
    }

    /// `MD5` or `SHA-256`, any case; `None` for what is not spoken here (`-sess`, SHA-512-256).
    pub fn parse(name: &str) -> Option<Self> {
        if name.eq_ignore_ascii_case("MD5") {
            Some(Algorithm::Md5)
        } else if name.eq_ignore_ascii_case("SHA-256") {
            Some(Algorithm::Sha256)
        } else {
            None
        }
    }

    /// The lowercase hex digest of `data`, RFC 7616's `H`.
    pub fn hex(self, data: &str) -> String {
        match self {
            Algorithm::Md5 => hex(&Md5::digest(data.as_bytes())),
            Algorithm::Sha256 => hex(&Sha256::digest(data.as_bytes())),
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    out
}

/// One Digest challenge (`WWW-Authenticate: Digest ...`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Challenge {
    pub realm: String,
    pub nonce: String,
    pub opaque: Option<String>,
    pub algorithm: Algorithm,
    /// Whether `qop="auth"` is offered; without any `qop` the answer is RFC 2069's, as some
    /// old cameras still ask.
    pub qop_auth: bool,
    /// The previous nonce has expired, the password was right: answer again, don't give up.
    pub stale: bool,
}

impl Challenge {
    /// Every Digest challenge in `values` (each a `WWW-Authenticate` header; one header may
    /// carry several challenges, of several schemes) that can be answered here, in order.
    pub fn parse_all<'a>(values: impl IntoIterator<Item = &'a str>) -> Vec<Challenge> {
        values
            .into_iter()
            .flat_map(auth_schemes)
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("Digest"))
            .filter_map(|(_, params)| Challenge::from_params(&params))
            .collect()
    }

    /// The challenge to answer among `values`: the first SHA-256 one, else the first MD5 one.
    pub fn pick<'a>(values: impl IntoIterator<Item = &'a str>) -> Option<Challenge> {
        let all = Challenge::parse_all(values);
        let sha256 = all.iter().position(|c| c.algorithm == Algorithm::Sha256);
        let chosen = sha256.or(if all.is_empty() { None } else { Some(0) })?;
        all.into_iter().nth(chosen)
    }

    fn from_params(params: &[(String, String)]) -> Option<Challenge> {
        let param = |name: &str| {
            params
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
        };
        let algorithm = match param("algorithm") {
            None => Algorithm::Md5,
            Some(name) => Algorithm::parse(&name)?,
        };
        let qop_auth = match param("qop") {
            None => false,
            // `qop="auth, auth-int"`: a list.
            Some(list) => {
                if !list
                    .split(',')
                    .any(|q| q.trim().eq_ignore_ascii_case("auth"))
                {
                    return None;
                }
                true
            }
        };
        Some(Challenge {
            realm: param("realm")?,
            nonce: param("nonce")?,
            opaque: param("opaque"),
            algorithm,
            qop_auth,
            stale: param("stale").is_some_and(|s| s.eq_ignore_ascii_case("true")),
        })
    }

    /// The `WWW-Authenticate` header value (the camera's side).
    pub fn header(&self) -> String {
        let mut out = format!("Digest realm={}", quoted(&self.realm));
        if self.qop_auth {
            out.push_str(", qop=\"auth\"");
        }
        out.push_str(&format!(
            ", algorithm={}, nonce={}",
            self.algorithm.name(),
            quoted(&self.nonce)
        ));
        if let Some(opaque) = &self.opaque {
            out.push_str(&format!(", opaque={}", quoted(opaque)));
        }
        if self.stale {
            out.push_str(", stale=true");
        }
        out
    }
}

/// RFC 7616's `response`: `H(H(A1):nonce:nc:cnonce:qop:H(A2))` with `qop=auth`, or RFC 2069's
/// `H(H(A1):nonce:H(A2))` without, where `A1 = username:realm:password` and
/// `A2 = method:uri`.
#[allow(clippy::too_many_arguments)]
pub fn response(
    algorithm: Algorithm,
    username: &str,
    realm: &str,
    password: &str,
    method: &str,
    uri: &str,
    nonce: &str,
    auth: Option<(u32, &str)>,
) -> String {
    let ha1 = algorithm.hex(&format!("{username}:{realm}:{password}"));
    let ha2 = algorithm.hex(&format!("{method}:{uri}"));
    match auth {
        Some((nc, cnonce)) => algorithm.hex(&format!("{ha1}:{nonce}:{nc:08x}:{cnonce}:auth:{ha2}")),
        None => algorithm.hex(&format!("{ha1}:{nonce}:{ha2}")),
    }
}

/// An answer to a challenge (`Authorization: Digest ...`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub realm: String,
    pub nonce: String,
    /// The request target as sent (`/snapshot.jpg`).
    pub uri: String,
    pub algorithm: Algorithm,
    pub response: String,
    /// `qop=auth` with its nonce count and client nonce; `None` for RFC 2069's form.
    pub auth: Option<(u32, String)>,
    pub opaque: Option<String>,
}

impl Credentials {
    /// The answer to `challenge` for `method` on `uri`, the `nc`-th request with this nonce,
    /// with the client nonce `cnonce` (fresh and random per challenge).
    pub fn answer(
        challenge: &Challenge,
        username: &str,
        password: &str,
        method: &str,
        uri: &str,
        nc: u32,
        cnonce: &str,
    ) -> Self {
        let auth = challenge.qop_auth.then(|| (nc, cnonce.to_string()));
        let response = response(
            challenge.algorithm,
            username,
            &challenge.realm,
            password,
            method,
            uri,
            &challenge.nonce,
            auth.as_ref().map(|(nc, cnonce)| (*nc, cnonce.as_str())),
        );
        Self {
            username: username.to_string(),
            realm: challenge.realm.clone(),
            nonce: challenge.nonce.clone(),
            uri: uri.to_string(),
            algorithm: challenge.algorithm,
            response,
            auth,
            opaque: challenge.opaque.clone(),
        }
    }

    /// The `Authorization` header value.
    pub fn header(&self) -> String {
        let mut out = format!(
            "Digest username={}, realm={}, nonce={}, uri={}, algorithm={}, response={}",
            quoted(&self.username),
            quoted(&self.realm),
            quoted(&self.nonce),
            quoted(&self.uri),
            self.algorithm.name(),
            quoted(&self.response)
        );
        if let Some((nc, cnonce)) = &self.auth {
            out.push_str(&format!(
                ", qop=auth, nc={nc:08x}, cnonce={}",
                quoted(cnonce)
            ));
        }
        if let Some(opaque) = &self.opaque {
            out.push_str(&format!(", opaque={}", quoted(opaque)));
        }
        out
    }

    /// Reads an `Authorization` header value (the camera's side); `None` unless it is a
    /// complete Digest answer in a form spoken here.
    pub fn parse(value: &str) -> Option<Self> {
        let (scheme, params) = auth_schemes(value).into_iter().next()?;
        if !scheme.eq_ignore_ascii_case("Digest") {
            return None;
        }
        let param = |name: &str| {
            params
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
        };
        let algorithm = match param("algorithm") {
            None => Algorithm::Md5,
            Some(name) => Algorithm::parse(&name)?,
        };
        let auth = match param("qop") {
            None => None,
            Some(qop) if qop.eq_ignore_ascii_case("auth") => {
                let nc = u32::from_str_radix(&param("nc")?, 16).ok()?;
                Some((nc, param("cnonce")?))
            }
            Some(_) => return None,
        };
        Some(Self {
            username: param("username")?,
            realm: param("realm")?,
            nonce: param("nonce")?,
            uri: param("uri")?,
            algorithm,
            response: param("response")?,
            auth,
            opaque: param("opaque"),
        })
    }

    /// Whether `response` is the one `password` gives for `method` (the camera's check, in
    /// time independent of where the strings differ).
    pub fn proves(&self, password: &str, method: &str) -> bool {
        let expected = response(
            self.algorithm,
            &self.username,
            &self.realm,
            password,
            method,
            &self.uri,
            &self.nonce,
            self.auth
                .as_ref()
                .map(|(nc, cnonce)| (*nc, cnonce.as_str())),
        );
        let given = self.response.to_ascii_lowercase();
        expected.len() == given.len()
            && expected
                .bytes()
                .zip(given.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }
}

/// `"value"` with `"` and `\` escaped (RFC 9110 quoted-string).
fn quoted(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// The challenges (or credentials) in one header value: each scheme with its auth-params,
/// names lowercased, quoted strings unescaped (RFC 9110 §11: `1#challenge`, each
/// `scheme [ 1*SP #auth-param ]`). Lenient: what it cannot read it skips.
fn auth_schemes(value: &str) -> Vec<(String, Vec<(String, String)>)> {
    let b = value.as_bytes();
    let mut out: Vec<(String, Vec<(String, String)>)> = Vec::new();
    let mut i = 0;
    let skip_ws = |mut i: usize| {
        while i < b.len() && (b[i] == b' ' || b[i] == b'\t') {
            i += 1;
        }
        i
    };
    while i < b.len() {
        if b[i] == b' ' || b[i] == b'\t' || b[i] == b',' {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && is_tchar(b[i]) {
            i += 1;
        }
        if i == start {
            i += 1; // not a token: skip it
            continue;
        }
        let token = &value[start..i];
        let j = skip_ws(i);
        if j < b.len() && b[j] == b'=' {
            let mut j = skip_ws(j + 1);
            let param_value = if j < b.len() && b[j] == b'"' {
                let mut bytes = Vec::new();
                j += 1;
                while j < b.len() && b[j] != b'"' {
                    if b[j] == b'\\' && j + 1 < b.len() {
                        j += 1;
                    }
                    bytes.push(b[j]);
                    j += 1;
                }
                j += 1; // the closing quote
                String::from_utf8_lossy(&bytes).into_owned()
            } else {
                let from = j;
                while j < b.len() && is_tchar(b[j]) {
                    j += 1;
                }
                value[from..j].to_string()
            };
            if let Some((_, params)) = out.last_mut() {
                params.push((token.to_ascii_lowercase(), param_value));
            }
            i = j;
        } else {
            out.push((token.to_string(), Vec::new()));
            i = j;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 7616 §3.9.1: the same request answered with SHA-256 and with MD5.
    const RFC_REALM: &str = "http-auth@example.org";
    const RFC_NONCE: &str = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v";
    const RFC_OPAQUE: &str = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS";
    const RFC_CNONCE: &str = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";

    fn rfc_challenges() -> [String; 2] {
        [
            format!(
                "Digest\r\n realm=\"{RFC_REALM}\",\r\n qop=\"auth, auth-int\",\r\n algorithm=SHA-256,\r\n nonce=\"{RFC_NONCE}\",\r\n opaque=\"{RFC_OPAQUE}\""
            )
            .replace("\r\n", ""),
            format!(
                "Digest realm=\"{RFC_REALM}\", qop=\"auth, auth-int\", algorithm=MD5, nonce=\"{RFC_NONCE}\", opaque=\"{RFC_OPAQUE}\""
            ),
        ]
    }

    #[test]
    fn rfc_7616_example_vectors() {
        let [sha, md5] = rfc_challenges();
        for (header, algorithm, expected) in [
            (
                sha,
                Algorithm::Sha256,
                "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
            ),
            (md5, Algorithm::Md5, "8ca523f5e9506fed4657c9700eebdbec"),
        ] {
            let challenge = Challenge::pick([header.as_str()]).unwrap();
            assert_eq!(challenge.algorithm, algorithm);
            assert_eq!(challenge.realm, RFC_REALM);
            assert_eq!(challenge.nonce, RFC_NONCE);
            assert_eq!(challenge.opaque.as_deref(), Some(RFC_OPAQUE));
            assert!(challenge.qop_auth);
            let answer = Credentials::answer(
                &challenge,
                "Mufasa",
                "Circle of Life",
                "GET",
                "/dir/index.html",
                1,
                RFC_CNONCE,
            );
            assert_eq!(answer.response, expected, "{algorithm:?}");
            let header = answer.header();
            assert!(header.contains("nc=00000001"), "{header}");
            assert!(header.contains(&format!("algorithm={}", algorithm.name())));
            // The camera's side reads it back and checks it.
            let read = Credentials::parse(&header).unwrap();
            assert_eq!(read, answer);
            assert!(read.proves("Circle of Life", "GET"));
            assert!(!read.proves("Circle of life", "GET"));
            assert!(!read.proves("Circle of Life", "POST"));
        }
    }

    #[test]
    fn sha_256_is_picked_over_md5_wherever_it_comes() {
        let [sha, md5] = rfc_challenges();
        let pick = |values: &[&str]| Challenge::pick(values.iter().copied()).unwrap().algorithm;
        assert_eq!(pick(&[&md5, &sha]), Algorithm::Sha256);
        assert_eq!(pick(&[&sha, &md5]), Algorithm::Sha256);
        assert_eq!(pick(&[&md5]), Algorithm::Md5);
        // Both in one header, after a Basic challenge, as some proxies join them.
        let joined = format!("Basic realm=\"x, y\", charset=\"UTF-8\", {md5}, {sha}");
        let all = Challenge::parse_all([joined.as_str()]);
        assert_eq!(all.len(), 2, "{all:?}");
        assert_eq!(all[0].algorithm, Algorithm::Md5);
        assert_eq!(all[1].algorithm, Algorithm::Sha256);
        assert_eq!(all[1].nonce, RFC_NONCE);
        // Nothing answerable: only Basic, only -sess, only auth-int.
        assert!(Challenge::pick(["Basic realm=\"cam\""]).is_none());
        assert!(
            Challenge::pick([r#"Digest realm="r", nonce="n", algorithm=MD5-sess, qop="auth""#])
                .is_none()
        );
        assert!(Challenge::pick([r#"Digest realm="r", nonce="n", qop="auth-int""#]).is_none());
        assert!(Challenge::pick(["Digest"]).is_none(), "no realm, no nonce");
    }

    #[test]
    fn quoted_strings_keep_their_commas_quotes_and_escapes() {
        let header = r#"Digest realm="Camera, \"front\" gate", nonce="a,b=c", opaque="x\\y", stale=TRUE, algorithm="md5", qop="auth""#;
        let c = Challenge::pick([header]).unwrap();
        assert_eq!(c.realm, r#"Camera, "front" gate"#);
        assert_eq!(c.nonce, "a,b=c");
        assert_eq!(c.opaque.as_deref(), Some(r"x\y"));
        assert!(c.stale);
        assert_eq!(c.algorithm, Algorithm::Md5);
        // Written back and read again unchanged.
        assert_eq!(Challenge::pick([c.header().as_str()]).unwrap(), c);
        // A user name with a quote survives the Authorization header too.
        let answer = Credentials::answer(&c, r#"ad"min"#, "pw", "GET", "/s.jpg?a=1,2", 7, "cn");
        let read = Credentials::parse(&answer.header()).unwrap();
        assert_eq!(read, answer);
        assert_eq!(read.auth, Some((7, "cn".to_string())));
        assert!(read.proves("pw", "GET"));
    }

    #[test]
    fn without_qop_the_answer_is_rfc_2069s() {
        let c = Challenge::pick([r#"Digest realm="old", nonce="n0""#]).unwrap();
        assert!(!c.qop_auth);
        let answer = Credentials::answer(&c, "u", "p", "GET", "/", 1, "ignored");
        let ha1 = Algorithm::Md5.hex("u:old:p");
        let ha2 = Algorithm::Md5.hex("GET:/");
        assert_eq!(
            answer.response,
            Algorithm::Md5.hex(&format!("{ha1}:n0:{ha2}"))
        );
        let header = answer.header();
        assert!(
            !header.contains("qop") && !header.contains("nc="),
            "{header}"
        );
        assert!(Credentials::parse(&header).unwrap().proves("p", "GET"));
    }

    #[test]
    fn incomplete_or_foreign_credentials_are_not_read() {
        assert!(Credentials::parse("Basic YWRtaW46czNjcmV0").is_none());
        assert!(Credentials::parse(r#"Digest username="u", realm="r", nonce="n""#).is_none());
        let no_nc = r#"Digest username="u", realm="r", nonce="n", uri="/", response="00", qop=auth, cnonce="c""#;
        assert!(Credentials::parse(no_nc).is_none());
        let bad_nc = r#"Digest username="u", realm="r", nonce="n", uri="/", response="00", qop=auth, nc=zz, cnonce="c""#;
        assert!(Credentials::parse(bad_nc).is_none());
        assert_eq!(
            Algorithm::hex(Algorithm::Md5, ""),
            "d41d8cd98f00b204e9800998ecf8427e"
        );
    }
}
