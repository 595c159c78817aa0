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

/// The owner's password of the web tests.
pub const OWNER_PASSWORD: &str = "a long owner password";

/// The value of `name` in a `Set-Cookie` of `answer`.
pub fn set_cookie(answer: &Answer, name: &str) -> Option<String> {
    answer
        .headers
        .iter()
        .filter(|(n, _)| n == "set-cookie")
        .filter_map(|(_, v)| v.split(';').next()?.split_once('='))
        .find(|(n, _)| n.trim() == name)
        .map(|(_, v)| v.to_owned())
}

/// The CSRF token of the first form in `body`.
pub fn csrf(body: &str) -> String {
    let start = body
        .find("name=\"csrf\" value=\"")
        .expect("a form with a CSRF token")
        + 19;
    body[start..].split('"').next().unwrap().to_owned()
}

/// Posts the login form with `password`; the answer (303 with a session cookie on success).
pub fn log_in(server: &Server, password: &str) -> Answer {
    let form = request(server, "GET", "/login", &[], "");
    assert_eq!(form.status, 200, "{form:?}");
    let cookie = set_cookie(&form, "hotline_login").expect("login cookie");
    let body = format!(
        "csrf={}&password={}",
        csrf(&form.body),
        password.replace(' ', "+")
    );
    let header = format!("Cookie: hotline_login={cookie}");
    request(server, "POST", "/login", &[&header], &body)
}

/// A logged-in owner: the session cookie.
pub struct Owner {
    pub session: String,
}

impl Owner {
    pub fn log_in(server: &Server) -> Owner {
        let answer = log_in(server, OWNER_PASSWORD);
        assert_eq!(answer.status, 303, "{answer:?}");
        let session = set_cookie(&answer, "hotline_session").expect("session cookie");
        Owner { session }
    }

    fn cookie(&self) -> String {
        format!("Cookie: hotline_session={}", self.session)
    }

    pub fn get(&self, server: &Server, path: &str) -> Answer {
        request(server, "GET", path, &[&self.cookie()], "")
    }

    /// Posts `fields` (already encoded) to `path` with the CSRF token of the page at `from`.
    pub fn post(&self, server: &Server, from: &str, path: &str, fields: &str) -> Answer {
        let page = self.get(server, from);
        assert_eq!(page.status, 200, "{page:?}");
        let body = format!("csrf={}&{fields}", csrf(&page.body));
        request(server, "POST", path, &[&self.cookie()], &body)
    }

    pub fn post_without_csrf(&self, server: &Server, path: &str, fields: &str) -> Answer {
        request(server, "POST", path, &[&self.cookie()], fields)
    }
}
