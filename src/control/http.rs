//! Health and metrics over HTTP/1.1 on loopback: `GET /healthz` and `GET /metrics`, read-only,
//! one request per connection.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::Shared;
use crate::metrics::{self, StoreFigures};

/// The largest HTTP request head read; the two endpoints need only the request line.
const MAX_HTTP_HEAD: usize = 8 * 1024;

/// How long an HTTP client may take to send its request head, and to take the response: a
/// scrape is a few hundred bytes each way, so an idle or slow client gives its slot back soon.
pub(super) const HTTP_TIMEOUT: Duration = Duration::from_secs(5);

/// An HTTP response: status line, plain-text body.
struct Response {
    status: u16,
    reason: &'static str,
    content_type: &'static str,
    body: String,
}

impl Response {
    fn text(status: u16, reason: &'static str, body: String) -> Response {
        Response {
            status,
            reason,
            content_type: "text/plain; charset=utf-8",
            body,
        }
    }
}

pub(super) async fn serve_http(
    mut stream: TcpStream,
    shared: Arc<Shared>,
    cancel: CancellationToken,
) {
    let head = tokio::select! {
        head = tokio::time::timeout(HTTP_TIMEOUT, read_http_head(&mut stream)) => head,
        () = cancel.cancelled() => return,
    };
    let (response, head_only) = match head {
        Err(_) | Ok(Err(_)) => return,
        Ok(Ok(head)) => match parse_request_line(&head) {
            None => (
                Response::text(400, "Bad Request", "bad request\n".to_owned()),
                false,
            ),
            Some((method, path)) => {
                let head_only = method == "HEAD";
                let response = if method != "GET" && !head_only {
                    Response::text(405, "Method Not Allowed", "only GET and HEAD\n".to_owned())
                } else {
                    route(&shared, path).await
                };
                (response, head_only)
            }
        },
    };
    let mut bytes = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
        response.status,
        response.reason,
        response.content_type,
        response.body.len()
    )
    .into_bytes();
    if !head_only {
        bytes.extend_from_slice(response.body.as_bytes());
    }
    let _ = tokio::time::timeout(HTTP_TIMEOUT, async {
        stream.write_all(&bytes).await?;
        stream.shutdown().await
    })
    .await;
}

/// Reads up to the blank line that ends the request head.
async fn read_http_head(stream: &mut TcpStream) -> std::io::Result<String> {
    let mut head = Vec::new();
    let mut chunk = [0_u8; 1024];
    loop {
        let read = stream.read(&mut chunk).await?;
        if read == 0 {
            break;
        }
        head.extend_from_slice(chunk.get(..read).unwrap_or_default());
        if head.windows(4).any(|w| w == b"\r\n\r\n")
            || head.windows(2).any(|w| w == b"\n\n")
            || head.len() >= MAX_HTTP_HEAD
        {
            break;
        }
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}

/// The method and the path (without a query) of a request line such as `GET /metrics HTTP/1.1`.
pub(super) fn parse_request_line(head: &str) -> Option<(&str, &str)> {
    let line = head.lines().next()?;
    let mut parts = line.split_ascii_whitespace();
    let method = parts.next()?;
    let target = parts.next()?;
    let version = parts.next()?;
    if !version.starts_with("HTTP/1.") || parts.next().is_some() {
        return None;
    }
    let path = target.split('?').next().unwrap_or(target);
    Some((method, path))
}

async fn route(shared: &Arc<Shared>, path: &str) -> Response {
    match path {
        "/healthz" => healthz(shared).await,
        "/metrics" => metrics(shared).await,
        _ => Response::text(
            404,
            "Not Found",
            "not found; try /healthz or /metrics\n".to_owned(),
        ),
    }
}

async fn healthz(shared: &Arc<Shared>) -> Response {
    let store = shared.store.clone();
    let oldest = tokio::task::spawn_blocking(move || metrics::outbox_oldest(&store)).await;
    let now = jiff::Timestamp::now();
    let mut problems = match oldest {
        Ok(Ok(oldest)) => shared.metrics.problems(oldest, now),
        Ok(Err(err)) => vec![format!(
            "store: cannot read the outbox: {}",
            crate::telemetry::chain(&err)
        )],
        Err(join) => vec![format!("store: reading the outbox failed: {join}")],
    };
    if problems.is_empty() {
        return Response::text(200, "OK", "ok\n".to_owned());
    }
    problems.push(String::new());
    Response::text(503, "Service Unavailable", problems.join("\n"))
}

async fn metrics(shared: &Arc<Shared>) -> Response {
    let store = shared.store.clone();
    let figures = tokio::task::spawn_blocking(move || StoreFigures::read(&store)).await;
    match figures {
        Ok(Ok(figures)) => Response {
            status: 200,
            reason: "OK",
            content_type: metrics::CONTENT_TYPE,
            body: shared.metrics.render(&figures, jiff::Timestamp::now()),
        },
        Ok(Err(err)) => {
            warn!(error = %crate::telemetry::chain(&err), "Cannot read the store for /metrics.");
            Response::text(
                500,
                "Internal Server Error",
                format!("cannot read the store: {}\n", crate::telemetry::chain(&err)),
            )
        }
        Err(join) => Response::text(
            500,
            "Internal Server Error",
            format!("reading the store failed: {join}\n"),
        ),
    }
}
