//! Listening sockets, created through socket2 so that options are set before `bind`.
//!
//! hotline listens on IPv6 only: with `IPV6_V6ONLY` a socket on `[::]` never receives IPv4
//! traffic as IPv4-mapped addresses, whatever the system default (`net.ipv6.bindv6only`) is.

use std::io;
use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::{TcpListener, UdpSocket};

/// Asked for, not guaranteed: the kernel silently caps it at `net.core.rmem_max`. A burst of
/// REGISTER refreshes after a router reboot should queue instead of being dropped.
const UDP_RECEIVE_BUFFER: usize = 1 << 20;

/// Pending connections the kernel may queue before `accept`; it caps this at `somaxconn`.
const TCP_BACKLOG: i32 = 1024;

/// Binds a UDP socket; an IPv6 address gets `IPV6_V6ONLY` so that the server never answers on
/// IPv4-mapped addresses. Must be called inside a tokio runtime.
pub fn bind_udp(addr: SocketAddr) -> io::Result<UdpSocket> {
    let socket = new_socket(addr, Type::DGRAM, Protocol::UDP)?;
    if let Err(error) = socket.set_recv_buffer_size(UDP_RECEIVE_BUFFER) {
        tracing::debug!(%addr, %error, "cannot enlarge the UDP receive buffer");
    }
    socket.bind(&addr.into())?;
    UdpSocket::from_std(socket.into())
}

/// Binds and listens on a TCP socket with `IPV6_V6ONLY` (for IPv6 addresses) and
/// `SO_REUSEADDR`, so that a restart does not wait for old connections in `TIME_WAIT`.
/// Must be called inside a tokio runtime.
pub fn bind_tcp(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = new_socket(addr, Type::STREAM, Protocol::TCP)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(TCP_BACKLOG)?;
    TcpListener::from_std(socket.into())
}

fn new_socket(addr: SocketAddr, kind: Type, protocol: Protocol) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), kind, Some(protocol))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    Ok(socket)
}

#[cfg(test)]
mod tests {
    use super::*;
    use socket2::SockRef;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[tokio::test]
    async fn udp_on_loopback_is_ipv6_only() {
        let socket = bind_udp("[::1]:0".parse().unwrap()).unwrap();
        let local = socket.local_addr().unwrap();
        assert_eq!(local.ip(), Ipv6Addr::LOCALHOST);
        assert_ne!(local.port(), 0);
        assert!(SockRef::from(&socket).only_v6().unwrap());
    }

    #[tokio::test]
    async fn udp_on_unspecified_leaves_the_ipv4_port_free() {
        let socket = bind_udp("[::]:0".parse().unwrap()).unwrap();
        let port = socket.local_addr().unwrap().port();
        assert!(SockRef::from(&socket).only_v6().unwrap());
        // Without V6ONLY the IPv6 socket would own this IPv4 port too (EADDRINUSE).
        std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, port)).unwrap();
    }

    #[tokio::test]
    async fn udp_datagrams_arrive() {
        let server = bind_udp("[::1]:0".parse().unwrap()).unwrap();
        let client = tokio::net::UdpSocket::bind("[::1]:0").await.unwrap();
        client
            .send_to(b"OPTIONS", server.local_addr().unwrap())
            .await
            .unwrap();
        let mut buffer = [0; 16];
        let (len, from) = server.recv_from(&mut buffer).await.unwrap();
        assert_eq!(&buffer[..len], b"OPTIONS");
        assert_eq!(from, client.local_addr().unwrap());
    }

    #[tokio::test]
    async fn tcp_on_loopback_accepts() {
        let listener = bind_tcp("[::1]:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        assert_eq!(addr.ip(), Ipv6Addr::LOCALHOST);
        let socket = SockRef::from(&listener);
        assert!(socket.only_v6().unwrap());
        assert!(socket.reuse_address().unwrap());
        let (connected, accepted) =
            tokio::join!(tokio::net::TcpStream::connect(addr), listener.accept());
        let (_, peer) = accepted.unwrap();
        assert_eq!(peer, connected.unwrap().local_addr().unwrap());
    }

    #[tokio::test]
    async fn tcp_on_unspecified_refuses_ipv4() {
        let listener = bind_tcp("[::]:0".parse().unwrap()).unwrap();
        let port = listener.local_addr().unwrap().port();
        assert!(SockRef::from(&listener).only_v6().unwrap());
        let error = tokio::net::TcpStream::connect((Ipv4Addr::LOCALHOST, port))
            .await
            .unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::ConnectionRefused);
    }
}
