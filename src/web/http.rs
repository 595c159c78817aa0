//! A small HTTP/1.1 server side: one request per connection, a bounded head, no body, and a
//! router that hands each path to its handler. Enough for ACME challenges now and the
//! provisioning and owner's pages later.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Longest request head (request line and headers) accepted.
pub const MAX_HEAD: usize = 8 * 1024;

/// How long a client may take to send its request head.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// The path and query as sent (`/.well-known/acme-challenge/abc`).
    pub target: String,
    pub headers: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

impl Response {
    pub fn text(status: u16, body: impl Into<String>) -> Response {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.into().into_bytes(),
        }
    }

    pub fn not_found() -> Response {
        Response::text(404, "not found\n")
    }

    fn encode(&self) -> Vec<u8> {
        let mut bytes = format!(
            "HTTP/1.1 {} {}\r\ncontent-type: {}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            self.status,
            reason(self.status),
            self.content_type,
            self.body.len()
        )
        .into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        _ => "",
    }
}

/// Answers requests for the paths it serves.
pub trait Handler: Send + Sync {
    fn handle(&self, request: &Request) -> Response;
}

/// Hands a request to the handler of the longest matching path prefix; 404 when none matches.
#[derive(Default)]
pub struct Router {
    routes: Vec<(&'static str, Box<dyn Handler>)>,
}

impl Router {
    pub fn route(mut self, prefix: &'static str, handler: impl Handler + 'static) -> Router {
        self.routes.push((prefix, Box::new(handler)));
        self.routes
            .sort_by_key(|(prefix, _)| std::cmp::Reverse(prefix.len()));
        self
    }
}

impl Handler for Router {
    fn handle(&self, request: &Request) -> Response {
        let path = request.target.split('?').next().unwrap_or_default();
        match self
            .routes
            .iter()
            .find(|(prefix, _)| path.starts_with(prefix))
        {
            Some((_, handler)) => handler.handle(request),
            None => Response::not_found(),
        }
    }
}

/// Reads one request within [`READ_TIMEOUT`], answers it and closes. Requests with a body are
/// refused (no handler takes one yet); a head longer than [`MAX_HEAD`] gets 431.
pub async fn serve<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, handler: &dyn Handler) {
    let response = match tokio::time::timeout(READ_TIMEOUT, read_head(&mut stream)).await {
        Err(_) | Ok(Err(Refused::Closed)) => return,
        Ok(Err(Refused::TooLarge)) => Response::text(431, "request head too large\n"),
        Ok(Err(Refused::Malformed)) => Response::text(400, "malformed request\n"),
        Ok(Ok(request)) if has_body(&request) => Response::text(413, "no body accepted\n"),
        Ok(Ok(request)) if request.method != "GET" && request.method != "HEAD" => {
            Response::text(405, "only GET\n")
        }
        Ok(Ok(request)) => {
            let mut response = handler.handle(&request);
            if request.method == "HEAD" {
                response.body.clear();
            }
            response
        }
    };
    let _ = stream.write_all(&response.encode()).await;
    let _ = stream.shutdown().await;
}

enum Refused {
    Closed,
    TooLarge,
    Malformed,
}

async fn read_head<S: AsyncRead + Unpin>(stream: &mut S) -> Result<Request, Refused> {
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let read = stream.read(&mut chunk).await.map_err(|_| Refused::Closed)?;
        if read == 0 {
            return Err(Refused::Closed);
        }
        head.extend_from_slice(&chunk[..read]);
        if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            return parse(&head[..end]).ok_or(Refused::Malformed);
        }
        if head.len() > MAX_HEAD {
            return Err(Refused::TooLarge);
        }
    }
}

fn parse(head: &[u8]) -> Option<Request> {
    let head = std::str::from_utf8(head).ok()?;
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let (method, target, version) = (
        request_line.next()?,
        request_line.next()?,
        request_line.next()?,
    );
    if request_line.next().is_some()
        || !version.starts_with("HTTP/1.")
        || !target.starts_with('/')
        || method.is_empty()
    {
        return None;
    }
    let headers = lines
        .map(|line| {
            let (name, value) = line.split_once(':')?;
            Some((name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        })
        .collect::<Option<Vec<_>>>()?;
    Some(Request {
        method: method.to_owned(),
        target: target.to_owned(),
        headers,
    })
}

fn has_body(request: &Request) -> bool {
    request.headers.iter().any(|(name, value)| {
        (name == "content-length" && value != "0") || name == "transfer-encoding"
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Echo;

    impl Handler for Echo {
        fn handle(&self, request: &Request) -> Response {
            Response::text(200, request.target.clone())
        }
    }

    async fn exchange(handler: &dyn Handler, request: &[u8]) -> String {
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        client.write_all(request).await.unwrap();
        serve(server, handler).await;
        let mut answer = String::new();
        client.read_to_string(&mut answer).await.unwrap();
        answer
    }

    #[tokio::test]
    async fn routes_by_longest_prefix() {
        let router = Router::default().route("/a/", Echo);
        let answer = exchange(&router, b"GET /a/b?c HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
        assert!(answer.ends_with("\r\n\r\n/a/b?c"), "{answer}");
        let answer = exchange(&router, b"GET /b HTTP/1.1\r\n\r\n").await;
        assert!(answer.starts_with("HTTP/1.1 404 "), "{answer}");
    }

    #[tokio::test]
    async fn refuses_what_it_does_not_serve() {
        let router = Router::default().route("/", Echo);
        for (request, status) in [
            (&b"POST / HTTP/1.1\r\n\r\n"[..], "405"),
            (b"GET / HTTP/1.1\r\ncontent-length: 5\r\n\r\nhello", "413"),
            (
                b"GET / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n",
                "413",
            ),
            (b"GET / HTTP/1.1 extra\r\n\r\n", "400"),
            (b"GET http://x/ HTTP/1.1\r\n\r\n", "400"),
            (b"GET / HTTP/1.1\r\nno colon\r\n\r\n", "400"),
            (b"GET / SIP/2.0\r\n\r\n", "400"),
        ] {
            let answer = exchange(&router, request).await;
            assert!(
                answer.starts_with(&format!("HTTP/1.1 {status} ")),
                "{answer}"
            );
        }
        let mut huge = b"GET / HTTP/1.1\r\nx: ".to_vec();
        huge.resize(MAX_HEAD + 2048, b'a');
        let answer = exchange(&router, &huge).await;
        assert!(answer.starts_with("HTTP/1.1 431 "), "{answer}");
    }
}
