//! A small HTTPS client for the web listener: one request per connection, over TLS verified
//! against the server's own certificate, the answer read to its end.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::Duration;

use super::{Server, generated_root, tls_stream};

/// The `[web]` table that turns the HTTPS listener on, on an ephemeral port of `[::1]`.
pub const WEB_TOML: &str = "[web]\nenabled = true\nhttps = [\"[::1]:0\"]\n";

/// An HTTP response as received.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    /// Header names in lower case, in order.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        let found = self.headers.iter().find(|(n, _)| n == name);
        found.map(|(_, v)| v.as_str())
    }
}

/// Sends `method target` with `headers` (`Name: value` lines) and `body`; reads the answer.
pub fn request(
    server: &Server,
    method: &str,
    target: &str,
    headers: &[&str],
    body: &str,
) -> Answer {
    let mut text = format!(
        "{method} {target} HTTP/1.1\r\nHost: hotline.test\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for header in headers {
        text.push_str(header);
        text.push_str("\r\n");
    }
    text.push_str("\r\n");
    text.push_str(body);
    let raw = exchange(server, text.as_bytes());
    parse(&raw).unwrap_or_else(|| panic!("malformed HTTP answer: {raw:?}"))
}

/// Writes `bytes` on a new TLS connection and reads until the server closes it.
pub fn exchange(server: &Server, bytes: &[u8]) -> String {
    let tcp = TcpStream::connect(server.https_address()).expect("connect HTTPS");
    tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut tls = tls_stream(generated_root(server), tcp);
    tls.write_all(bytes).expect("send request");
    let mut raw = Vec::new();
    let _ = tls.read_to_end(&mut raw);
    String::from_utf8_lossy(&raw).into_owned()
}

fn parse(raw: &str) -> Option<Answer> {
    let (head, body) = raw.split_once("\r\n\r\n")?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Some(Answer {
        status,
        headers,
        body: body.to_owned(),
    })
}
