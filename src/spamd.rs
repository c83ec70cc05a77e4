//! SpamAssassin's spamd, spoken over TCP on loopback with its own protocol (the one `spamc`
//! speaks; see spamd's `PROTOCOL` document): one `SYMBOLS SPAMC/1.5` request per connection
//! with a `Content-length` header and the message, answered by a `SPAMD/1.x 0 EX_OK` status
//! line, a `Spam: True ; 7.3 / 5.0` header and the names of the rules that hit as the body.
//!
//! Every failure (refused connection, timeout, a bad answer) becomes
//! [`SpamdAnswer::Unavailable`]: spamd is one signal among several and ingest never waits on it
//! for longer than the configured timeout.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::casework::spam::SpamdAnswer;

/// Messages larger than this are not sent (spamc's own default limit is 500 KB).
pub const MAX_SIZE: usize = 512 * 1024;
/// The largest answer read; a SYMBOLS answer is a few hundred bytes.
const MAX_ANSWER: u64 = 64 * 1024;

/// Asks spamd at `address` about `raw`, giving up after `timeout`.
pub async fn check(address: SocketAddr, raw: &[u8], timeout: Duration) -> SpamdAnswer {
    if raw.len() > MAX_SIZE {
        return SpamdAnswer::Unavailable(format!(
            "the message is larger than {} KiB, which is not sent to spamd",
            MAX_SIZE / 1024
        ));
    }
    match tokio::time::timeout(timeout, exchange(address, raw)).await {
        Err(_) => SpamdAnswer::Unavailable(format!("no answer from {address} within {timeout:?}")),
        Ok(Err(reason)) => SpamdAnswer::Unavailable(reason),
        Ok(Ok(answer)) => answer,
    }
}

async fn exchange(address: SocketAddr, raw: &[u8]) -> Result<SpamdAnswer, String> {
    let mut stream = TcpStream::connect(address)
        .await
        .map_err(|err| format!("cannot connect to {address}: {err}"))?;
    let body = crlf(raw);
    let head = format!(
        "SYMBOLS SPAMC/1.5\r\nContent-length: {}\r\nUser: casemail\r\n\r\n",
        body.len()
    );
    stream
        .write_all(head.as_bytes())
        .await
        .and(stream.write_all(&body).await)
        .and(stream.shutdown().await)
        .map_err(|err| format!("cannot send to {address}: {err}"))?;
    let mut answer = Vec::new();
    (&mut stream)
        .take(MAX_ANSWER)
        .read_to_end(&mut answer)
        .await
        .map_err(|err| format!("cannot read spamd's answer: {err}"))?;
    parse_answer(&String::from_utf8_lossy(&answer))
}

/// Line endings as CRLF, as spamd expects a message on the wire.
fn crlf(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + raw.len() / 32);
    let mut previous = 0u8;
    for &byte in raw {
        if byte == b'\n' && previous != b'\r' {
            out.push(b'\r');
        }
        out.push(byte);
        previous = byte;
    }
    out
}

/// Reads a SYMBOLS answer: status line, headers, blank line, comma-separated rule names.
pub fn parse_answer(text: &str) -> Result<SpamdAnswer, String> {
    let (head, body) = text
        .split_once("\r\n\r\n")
        .or_else(|| text.split_once("\n\n"))
        .unwrap_or((text, ""));
    let mut lines = head.lines();
    let status = lines.next().unwrap_or_default().trim();
    let mut parts = status.split_whitespace();
    let protocol = parts.next().unwrap_or_default();
    let code = parts.next().unwrap_or_default();
    if !protocol.starts_with("SPAMD/") {
        return Err(format!("not a spamd answer: {:?}", cut(status)));
    }
    if code != "0" {
        return Err(format!("spamd refused the check: {:?}", cut(status)));
    }
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if !name.trim().eq_ignore_ascii_case("spam") {
            continue;
        }
        // "True ; 7.3 / 5.0"
        let (flag, scores) = value
            .split_once(';')
            .ok_or_else(|| format!("unreadable Spam header: {:?}", cut(value)))?;
        let (score, required) = scores
            .split_once('/')
            .ok_or_else(|| format!("unreadable Spam header: {:?}", cut(value)))?;
        let number = |text: &str| {
            text.trim()
                .parse::<f64>()
                .ok()
                .filter(|n| n.is_finite())
                .ok_or_else(|| format!("unreadable score in the Spam header: {:?}", cut(value)))
        };
        let flag = flag.trim();
        let spam = flag.eq_ignore_ascii_case("true") || flag.eq_ignore_ascii_case("yes");
        let symbols = body
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        return Ok(SpamdAnswer::Checked {
            spam,
            score: number(score)?,
            required: number(required)?,
            symbols,
        });
    }
    Err("spamd's answer has no Spam header".to_owned())
}

fn cut(text: &str) -> String {
    text.chars().take(80).collect()
}
