//! A small DNS stub resolver for AAAA records. The appliance binary is static, so glibc's
//! resolver cannot load its NSS modules, and the service may open IPv6 sockets only, which
//! rules out systemd-resolved's IPv4 stub: hotline asks the network's DNS servers itself, as
//! systemd-resolved learned them (router advertisements or DHCPv6).

use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use ring::rand::{SecureRandom, SystemRandom};
use tokio::net::UdpSocket;

/// Where the DNS servers are listed: the servers systemd-resolved uses, then the classic file.
const RESOLV_CONF: [&str; 2] = ["/run/systemd/resolve/resolv.conf", "/etc/resolv.conf"];

/// How long to wait for one answer; each server is asked twice.
const TIMEOUT: Duration = Duration::from_secs(2);

const AAAA: u16 = 28;

#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("no DNS server is listed in {}", RESOLV_CONF.join(" or "))]
    NoServer,
    #[error("{name:?} is not a valid DNS name")]
    InvalidName { name: String },
    #[error("{name} does not exist in the DNS")]
    NoSuchName { name: String },
    #[error("{name} has no AAAA record")]
    NoAddress { name: String },
    #[error("no DNS server answered for {name}: {reason}")]
    NoAnswer { name: String, reason: String },
}

/// The IPv6 addresses of `name`, from the system's DNS servers.
pub async fn lookup_aaaa(name: &str) -> Result<Vec<Ipv6Addr>, DnsError> {
    lookup_aaaa_at(name, &nameservers()).await
}

/// The IPv6 addresses of `name`, asking `servers` in turn.
pub async fn lookup_aaaa_at(name: &str, servers: &[SocketAddr]) -> Result<Vec<Ipv6Addr>, DnsError> {
    let name = name.trim_end_matches('.');
    if servers.is_empty() {
        return Err(DnsError::NoServer);
    }
    let mut reason = String::from("no server tried");
    for server in servers {
        for _ in 0..2 {
            match ask(name, *server).await {
                Ok(Answer::Addresses(addresses)) if addresses.is_empty() => {
                    return Err(DnsError::NoAddress {
                        name: name.to_owned(),
                    });
                }
                Ok(Answer::Addresses(addresses)) => return Ok(addresses),
                Ok(Answer::NoSuchName) => {
                    return Err(DnsError::NoSuchName {
                        name: name.to_owned(),
                    });
                }
                Err(Failure::InvalidName) => {
                    return Err(DnsError::InvalidName {
                        name: name.to_owned(),
                    });
                }
                Err(Failure::Other(error)) => reason = format!("{server}: {error}"),
            }
        }
    }
    Err(DnsError::NoAnswer {
        name: name.to_owned(),
        reason,
    })
}

/// The DNS servers of the first file in [`RESOLV_CONF`] that lists some, IPv6 first.
pub fn nameservers() -> Vec<SocketAddr> {
    for path in RESOLV_CONF {
        let Ok(text) = std::fs::read_to_string(path) else {
            continue;
        };
        let mut servers = parse_resolv_conf(&text);
        servers.sort_by_key(|server| server.is_ipv4());
        if !servers.is_empty() {
            return servers;
        }
    }
    Vec::new()
}

fn parse_resolv_conf(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|line| line.trim().strip_prefix("nameserver"))
        .filter_map(|address| address.trim().parse::<IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

enum Answer {
    Addresses(Vec<Ipv6Addr>),
    NoSuchName,
}

enum Failure {
    InvalidName,
    Other(String),
}

async fn ask(name: &str, server: SocketAddr) -> Result<Answer, Failure> {
    let mut id = [0u8; 2];
    SystemRandom::new()
        .fill(&mut id)
        .map_err(|_| Failure::Other("no random numbers".to_owned()))?;
    let query = query(u16::from_be_bytes(id), name).ok_or(Failure::InvalidName)?;
    let local: SocketAddr = match server {
        SocketAddr::V6(_) => "[::]:0".parse().expect("address"),
        SocketAddr::V4(_) => "0.0.0.0:0".parse().expect("address"),
    };
    let other = |error: io::Error| Failure::Other(error.to_string());
    let socket = UdpSocket::bind(local).await.map_err(other)?;
    socket.connect(server).await.map_err(other)?;
    socket.send(&query).await.map_err(other)?;
    let mut buffer = [0u8; 1500];
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        let received = tokio::time::timeout_at(deadline, socket.recv(&mut buffer)).await;
        let length = match received {
            Ok(received) => received.map_err(other)?,
            Err(_) => return Err(Failure::Other("no answer".to_owned())),
        };
        // Anything that is not the answer to this query (a late or forged datagram) is ignored.
        if let Some(answer) = parse(&buffer[..length], &query) {
            return Ok(answer);
        }
    }
}

/// A recursive AAAA query for `name` with `id`, or `None` when `name` is not a DNS name.
fn query(id: u16, name: &str) -> Option<Vec<u8>> {
    let mut query = Vec::with_capacity(18 + name.len());
    query.extend_from_slice(&id.to_be_bytes());
    query.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    if name.is_empty() || name.len() > 253 {
        return None;
    }
    for label in name.split('.') {
        let valid = label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if label.is_empty() || label.len() > 63 || !valid {
            return None;
        }
        query.push(label.len() as u8);
        query.extend_from_slice(label.as_bytes());
    }
    query.push(0);
    query.extend_from_slice(&AAAA.to_be_bytes());
    query.extend_from_slice(&[0, 1]);
    Some(query)
}

/// The answer to `query` in `reply`: its AAAA records (a CNAME chain ends in them), or `None`
/// when `reply` is not a well-formed answer to that query.
fn parse(reply: &[u8], query: &[u8]) -> Option<Answer> {
    let question = &query[12..];
    let header = reply.get(..12)?;
    let flags = u16::from_be_bytes([header[2], header[3]]);
    let same_question = reply
        .get(12..12 + question.len())?
        .eq_ignore_ascii_case(question);
    if header[..2] != query[..2] || flags & 0x8000 == 0 || !same_question {
        return None;
    }
    match flags & 0x000f {
        0 => {}
        3 => return Some(Answer::NoSuchName),
        _ => return None,
    }
    let answers = u16::from_be_bytes([header[6], header[7]]);
    let mut at = 12 + question.len();
    let mut addresses = Vec::new();
    for _ in 0..answers {
        at = skip_name(reply, at)?;
        let fixed = reply.get(at..at + 10)?;
        let kind = u16::from_be_bytes([fixed[0], fixed[1]]);
        let length = usize::from(u16::from_be_bytes([fixed[8], fixed[9]]));
        let data = reply.get(at + 10..at + 10 + length)?;
        if kind == AAAA
            && let Ok(octets) = <[u8; 16]>::try_from(data)
        {
            addresses.push(Ipv6Addr::from(octets));
        }
        at += 10 + length;
    }
    Some(Answer::Addresses(addresses))
}

/// The offset after the (possibly compressed) name at `at`.
fn skip_name(message: &[u8], mut at: usize) -> Option<usize> {
    loop {
        let length = *message.get(at)?;
        match length {
            0 => return Some(at + 1),
            _ if length & 0xc0 == 0xc0 => return Some(at + 2),
            _ if length & 0xc0 == 0 => at += 1 + usize::from(length),
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A DNS server on `[::1]` that answers each query with `answer(query)`.
    async fn server(answer: fn(&[u8]) -> Vec<u8>) -> SocketAddr {
        let socket = UdpSocket::bind("[::1]:0").await.unwrap();
        let address = socket.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buffer = [0u8; 512];
            while let Ok((length, from)) = socket.recv_from(&mut buffer).await {
                let _ = socket.send_to(&answer(&buffer[..length]), from).await;
            }
        });
        address
    }

    /// The reply header for `query` with `rcode` and `answers` records, and its question.
    fn reply(query: &[u8], rcode: u8, answers: u8) -> Vec<u8> {
        let mut reply = vec![
            query[0],
            query[1],
            0x81,
            0x80 | rcode,
            0,
            1,
            0,
            answers,
            0,
            0,
            0,
            0,
        ];
        reply.extend_from_slice(&query[12..]);
        reply
    }

    fn cname_then_two_addresses(query: &[u8]) -> Vec<u8> {
        let mut reply = reply(query, 0, 3);
        // sip.example.org CNAME board.example.org (compressed: "board" + pointer to "example.org")
        reply.extend_from_slice(&[0xc0, 12, 0, 5, 0, 1, 0, 0, 0, 60, 0, 8, 5]);
        reply.extend_from_slice(b"board");
        reply.extend_from_slice(&[0xc0, 16]);
        for last in [1, 2] {
            reply.extend_from_slice(&[0xc0, 12, 0, 28, 0, 1, 0, 0, 0, 60, 0, 16]);
            let ip: Ipv6Addr = format!("2001:db8::{last}").parse().unwrap();
            reply.extend_from_slice(&ip.octets());
        }
        reply
    }

    #[tokio::test]
    async fn follows_the_answer_to_its_aaaa_records() {
        let dns = server(cname_then_two_addresses).await;
        let addresses = lookup_aaaa_at("sip.example.org.", &[dns]).await.unwrap();
        assert_eq!(
            addresses,
            [
                "2001:db8::1".parse::<Ipv6Addr>().unwrap(),
                "2001:db8::2".parse().unwrap()
            ]
        );
    }

    #[tokio::test]
    async fn says_what_is_missing() {
        let nxdomain = server(|query| reply(query, 3, 0)).await;
        let error = lookup_aaaa_at("nowhere.example.org", &[nxdomain]).await;
        assert!(
            matches!(error, Err(DnsError::NoSuchName { .. })),
            "{error:?}"
        );
        let empty = server(|query| reply(query, 0, 0)).await;
        let error = lookup_aaaa_at("v4only.example.org", &[empty]).await;
        assert!(
            matches!(error, Err(DnsError::NoAddress { .. })),
            "{error:?}"
        );
        let error = lookup_aaaa_at("two words", &[empty]).await;
        assert!(
            matches!(error, Err(DnsError::InvalidName { .. })),
            "{error:?}"
        );
        let error = lookup_aaaa_at("x.example.org", &[]).await;
        assert!(matches!(error, Err(DnsError::NoServer)), "{error:?}");
    }

    #[test]
    fn ignores_replies_to_other_queries_and_garbage() {
        let query = query(7, "sip.example.org").unwrap();
        let mut other = query.clone();
        other[0] ^= 1;
        for bad in [
            &b""[..],
            &query,                   // not a response
            &reply(&other, 0, 0),     // another id
            &reply(&query, 2, 0)[..], // SERVFAIL
        ] {
            assert!(parse(bad, &query).is_none(), "{bad:?}");
        }
        let mut truncated = cname_then_two_addresses(&query);
        truncated.truncate(truncated.len() - 3);
        assert!(parse(&truncated, &query).is_none());
    }

    #[test]
    fn reads_the_servers_of_resolv_conf() {
        let text = "# comment\nnameserver 2001:db8::53\nsearch lan\nnameserver 192.0.2.53\n\
                    nameserver fe80::1%eth0\n";
        assert_eq!(
            parse_resolv_conf(text),
            [
                "[2001:db8::53]:53".parse::<SocketAddr>().unwrap(),
                "192.0.2.53:53".parse().unwrap()
            ]
        );
    }
}
