//! Just enough HTTP/1.1 for an OAuth 2.0 token endpoint: one request per connection
//! (`Connection: close`), an `application/x-www-form-urlencoded` POST or a GET, over TLS
//! (rustls, the system's roots or `oauth2.ca_file`) or plain TCP to loopback. The answer is read
//! whole, up to [`MAX_RESPONSE`] bytes, with `Content-Length` or chunked framing (RFC 9112 §6).
//!
//! A general HTTP client would bring a connection pool, HTTP/2 and redirects that a token
//! endpoint needs none of; this one follows no redirect, which also keeps the client secret
//! from being sent anywhere but the configured endpoint.

use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls;

/// A token endpoint answers in well under this; a slower one is treated as unreachable.
const TIMEOUT: Duration = Duration::from_secs(30);
/// Token responses are a few kilobytes; anything larger is not one.
pub(crate) const MAX_RESPONSE: usize = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error("{0:?} is not an http or https URL")]
    Url(String),
    #[error("cannot connect to {host}:{port}")]
    Connect {
        host: String,
        port: u16,
        #[source]
        source: std::io::Error,
    },
    #[error("tls with {host} failed: {reason}")]
    Tls { host: String, reason: String },
    #[error("connection to {host} failed")]
    Io {
        host: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{host} did not answer within {TIMEOUT:?}")]
    Timeout { host: String },
    #[error("{host} sent a malformed HTTP response: {reason}")]
    Malformed { host: String, reason: String },
}

/// An endpoint, split for connecting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Url {
    pub secure: bool,
    pub host: String,
    pub port: u16,
    /// Path and query, starting with `/`.
    pub target: String,
}

impl Url {
    pub(crate) fn parse(url: &str) -> Result<Url, Error> {
        let bad = || Error::Url(url.to_owned());
        let (secure, rest) = if let Some(rest) = url.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = url.strip_prefix("http://") {
            (false, rest)
        } else {
            return Err(bad());
        };
        let (authority, target) = match rest.find(['/', '?']) {
            Some(at) => (
                rest.get(..at).ok_or_else(bad)?,
                rest.get(at..).ok_or_else(bad)?,
            ),
            None => (rest, "/"),
        };
        let target = if target.starts_with('?') {
            format!("/{target}")
        } else {
            target.to_owned()
        };
        let default_port = if secure { 443 } else { 80 };
        let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
            let (host, after) = bracketed.split_once(']').ok_or_else(bad)?;
            let port = match after.strip_prefix(':') {
                Some(port) => port.parse().map_err(|_| bad())?,
                None if after.is_empty() => default_port,
                None => return Err(bad()),
            };
            (host.to_owned(), port)
        } else {
            match authority.rsplit_once(':') {
                Some((host, port)) => (host.to_owned(), port.parse().map_err(|_| bad())?),
                None => (authority.to_owned(), default_port),
            }
        };
        if host.is_empty() || host.contains(['@', ' ']) {
            return Err(bad());
        }
        Ok(Url {
            secure,
            host,
            port,
            target,
        })
    }

    fn host_header(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        match (self.secure, self.port) {
            (true, 443) | (false, 80) => host,
            _ => format!("{host}:{}", self.port),
        }
    }
}

/// A whole response.
#[derive(Debug)]
pub(crate) struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

/// `application/x-www-form-urlencoded` (the WHATWG URL standard's serializer): the bytes a
/// token request's body and an authorization URL's query are made of.
pub(crate) fn form_encode(pairs: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (index, (name, value)) in pairs.iter().enumerate() {
        if index > 0 {
            out.push('&');
        }
        encode_component(name, &mut out);
        out.push('=');
        encode_component(value, &mut out);
    }
    out
}

fn encode_component(text: &str, out: &mut String) {
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                out.push(char::from(byte));
            }
            b' ' => out.push('+'),
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
}

/// RFC 6749 §2.3.1 asks for the client id and secret to be form-encoded inside Basic, but
/// many servers (Glewlwyd among them) do not decode them, so an `@` in a client id would no
/// longer match. Encoding only the characters that decoding would change (`%`, `+`), that
/// would split the pair (`:`), and anything outside printable ASCII gives the same result on
/// both kinds of server for every id and secret the providers issue.
fn basic_component(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'%' | b'+' | b':' => out.push_str(&format!("%{byte:02X}")),
            0x21..=0x7e => out.push(char::from(byte)),
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

/// Decodes one `application/x-www-form-urlencoded` component (`+` is a space).
pub(crate) fn form_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while let Some(&byte) = bytes.get(at) {
        match byte {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(at + 1..at + 3)
                    .and_then(|hex| std::str::from_utf8(hex).ok())
                    .and_then(|hex| u8::from_str_radix(hex, 16).ok());
                match hex {
                    Some(decoded) => {
                        out.push(decoded);
                        at += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            other => out.push(other),
        }
        at += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// POSTs `fields` as a form to `url` and reads the whole answer. With `basic`, a client id and
/// secret go in an `Authorization: Basic` header.
pub(crate) async fn post_form(
    url: &str,
    fields: &[(&str, &str)],
    basic: Option<(&str, &str)>,
    ca_file: Option<&Path>,
) -> Result<Response, Error> {
    use base64::Engine as _;
    let url = Url::parse(url)?;
    let body = form_encode(fields);
    let authorization = match basic {
        Some((user, password)) => {
            let pair = format!("{}:{}", basic_component(user), basic_component(password));
            format!(
                "Authorization: Basic {}\r\n",
                base64::engine::general_purpose::STANDARD.encode(pair)
            )
        }
        None => String::new(),
    };
    let request = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: casemail\r\nAccept: application/json\r\n\
         {authorization}Content-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        url.target,
        url.host_header(),
        body.len()
    );
    exchange(&url, request.as_bytes(), ca_file).await
}

/// GETs `url` and reads the whole answer.
pub(crate) async fn get(url: &str, ca_file: Option<&Path>) -> Result<Response, Error> {
    let url = Url::parse(url)?;
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: casemail\r\nAccept: application/json\r\n\
         Connection: close\r\n\r\n",
        url.target,
        url.host_header(),
    );
    exchange(&url, request.as_bytes(), ca_file).await
}

async fn exchange(url: &Url, request: &[u8], ca_file: Option<&Path>) -> Result<Response, Error> {
    let timeout = || Error::Timeout {
        host: url.host.clone(),
    };
    tokio::time::timeout(TIMEOUT, async {
        let tcp = TcpStream::connect((url.host.as_str(), url.port))
            .await
            .map_err(|source| Error::Connect {
                host: url.host.clone(),
                port: url.port,
                source,
            })?;
        if url.secure {
            let connector = tls_connector(&url.host, ca_file)?;
            let name = rustls::pki_types::ServerName::try_from(url.host.clone()).map_err(|e| {
                Error::Tls {
                    host: url.host.clone(),
                    reason: e.to_string(),
                }
            })?;
            let tls = connector.connect(name, tcp).await.map_err(|e| Error::Tls {
                host: url.host.clone(),
                reason: e.to_string(),
            })?;
            round_trip(tls, &url.host, request).await
        } else {
            round_trip(tcp, &url.host, request).await
        }
    })
    .await
    .map_err(|_| timeout())?
}

fn tls_connector(host: &str, ca_file: Option<&Path>) -> Result<TlsConnector, Error> {
    crate::tls::connector(ca_file).map_err(|reason| Error::Tls {
        host: host.to_owned(),
        reason,
    })
}

async fn round_trip<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    host: &str,
    request: &[u8],
) -> Result<Response, Error> {
    let io = |source| Error::Io {
        host: host.to_owned(),
        source,
    };
    stream.write_all(request).await.map_err(io)?;
    stream.flush().await.map_err(io)?;
    let mut received = Vec::new();
    let mut buffer = [0_u8; 8192];
    loop {
        match stream.read(&mut buffer).await {
            Ok(0) => break,
            Ok(read) => {
                received.extend_from_slice(buffer.get(..read).unwrap_or_default());
                if received.len() > MAX_RESPONSE {
                    return Err(Error::Malformed {
                        host: host.to_owned(),
                        reason: format!("the response is larger than {MAX_RESPONSE} bytes"),
                    });
                }
                if let Ok(Some(response)) = parse_response(&received) {
                    return Ok(response);
                }
            }
            // Servers that close without TLS close_notify are common; what was read counts.
            Err(err) if !received.is_empty() => {
                return parse_response(&received)
                    .and_then(|parsed| parsed.ok_or_else(|| err.to_string()))
                    .map_err(|reason| Error::Malformed {
                        host: host.to_owned(),
                        reason,
                    });
            }
            Err(err) => return Err(io(err)),
        }
    }
    match parse_response(&received) {
        Ok(Some(response)) => Ok(response),
        Ok(None) => {
            // Without a length or chunked framing, the body ends where the connection does.
            let (status, headers_end, _) =
                parse_head(&received).map_err(|reason| Error::Malformed {
                    host: host.to_owned(),
                    reason,
                })?;
            Ok(Response {
                status,
                body: received.get(headers_end..).unwrap_or_default().to_vec(),
            })
        }
        Err(reason) => Err(Error::Malformed {
            host: host.to_owned(),
            reason,
        }),
    }
}

/// How the body of a response is framed.
#[derive(Debug, PartialEq, Eq)]
enum Framing {
    Length(usize),
    Chunked,
    UntilClose,
}

/// The status, where the body starts, and its framing; an error while the head is incomplete.
fn parse_head(received: &[u8]) -> Result<(u16, usize, Framing), String> {
    let end = received
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .ok_or_else(|| "the response ended inside its header".to_owned())?;
    let head = String::from_utf8_lossy(received.get(..end).unwrap_or_default()).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .strip_prefix("HTTP/1.")
        .and_then(|rest| rest.get(2..5))
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or_else(|| "no HTTP/1.x status line".to_owned())?;
    let mut framing = Framing::UntilClose;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("transfer-encoding")
            && value.to_ascii_lowercase().contains("chunked")
        {
            framing = Framing::Chunked;
        } else if name.eq_ignore_ascii_case("content-length") && framing != Framing::Chunked {
            let length = value
                .parse()
                .map_err(|_| format!("bad Content-Length {value:?}"))?;
            framing = Framing::Length(length);
        }
    }
    Ok((status, end + 4, framing))
}

/// The whole response once it is complete, `None` while more is to come.
fn parse_response(received: &[u8]) -> Result<Option<Response>, String> {
    let Ok((status, body_start, framing)) = parse_head(received) else {
        return Ok(None);
    };
    let rest = received.get(body_start..).unwrap_or_default();
    match framing {
        Framing::Length(length) => Ok(rest.get(..length).map(|body| Response {
            status,
            body: body.to_vec(),
        })),
        Framing::Chunked => Ok(dechunk(rest)?.map(|body| Response { status, body })),
        Framing::UntilClose => Ok(None),
    }
}

/// Joins a chunked body (RFC 9112 §7.1); `None` until the last chunk has arrived.
fn dechunk(mut rest: &[u8]) -> Result<Option<Vec<u8>>, String> {
    let mut body = Vec::new();
    loop {
        let Some(line_end) = rest.windows(2).position(|window| window == b"\r\n") else {
            return Ok(None);
        };
        let size_line = String::from_utf8_lossy(rest.get(..line_end).unwrap_or_default());
        let size_text = size_line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| format!("bad chunk size {size_text:?}"))?;
        let data_start = line_end + 2;
        if size == 0 {
            return Ok(Some(body));
        }
        let Some(data) = rest.get(data_start..data_start + size) else {
            return Ok(None);
        };
        body.extend_from_slice(data);
        match rest.get(data_start + size..) {
            Some(after) if after.len() >= 2 => rest = after.get(2..).unwrap_or_default(),
            _ => return Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_host_port_and_target() {
        let url = Url::parse("https://login.example/tenant/oauth2/v2.0/token").unwrap();
        assert_eq!(
            url,
            Url {
                secure: true,
                host: "login.example".to_owned(),
                port: 443,
                target: "/tenant/oauth2/v2.0/token".to_owned()
            }
        );
        let url = Url::parse("http://127.0.0.1:4593?x=1").unwrap();
        assert_eq!((url.port, url.target.as_str()), (4593, "/?x=1"));
        let url = Url::parse("http://[::1]:8080/api").unwrap();
        assert_eq!((url.host.as_str(), url.port), ("::1", 8080));
        assert_eq!(url.host_header(), "[::1]:8080");
        assert!(Url::parse("ftp://x/").is_err());
        assert!(Url::parse("https://user@host/").is_err());
    }

    #[test]
    fn basic_credentials_keep_what_servers_read_literally() {
        assert_eq!(
            basic_component("app@charity.example"),
            "app@charity.example"
        );
        assert_eq!(basic_component("a~b.c_d-e"), "a~b.c_d-e");
        assert_eq!(basic_component("x:y+z%"), "x%3Ay%2Bz%25");
        assert_eq!(form_decode(&basic_component("x:y+z% é")), "x:y+z% é");
    }

    #[test]
    fn form_encoding_round_trips() {
        let encoded = form_encode(&[("scope", "a b/c"), ("x", "ü&=")]);
        assert_eq!(encoded, "scope=a+b%2Fc&x=%C3%BC%26%3D");
        assert_eq!(form_decode("a+b%2Fc"), "a b/c");
        assert_eq!(form_decode("%C3%BC%26%3D"), "ü&=");
        assert_eq!(form_decode("50%"), "50%");
    }

    #[test]
    fn responses_are_complete_only_when_their_framing_says_so() {
        let head = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n";
        assert!(parse_response(head).unwrap().is_none());
        let mut whole = head.to_vec();
        whole.extend_from_slice(b"{}{}");
        let response = parse_response(&whole).unwrap().unwrap();
        assert_eq!(
            (response.status, response.body.as_slice()),
            (200, &b"{}{}"[..])
        );

        let chunked = b"HTTP/1.1 400 Bad\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"a\r\n2;x=y\r\n\"}\r\n0\r\n\r\n";
        let response = parse_response(chunked).unwrap().unwrap();
        assert_eq!(
            (response.status, response.body.as_slice()),
            (400, &b"{\"a\"}"[..])
        );
        assert!(
            parse_response(&chunked[..chunked.len() - 7])
                .unwrap()
                .is_none()
        );
        assert!(
            parse_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n").is_err()
        );
    }
}
