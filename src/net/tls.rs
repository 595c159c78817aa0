//! TLS for SIP over TLS: the rustls configuration around the server's certificate.

use std::sync::Arc;

use rustls::ServerConfig;
use rustls::server::ResolvesServerCert;

/// TLS 1.0 and 1.1 are broken; rustls does not implement them, and this list keeps it that way.
const PROTOCOL_VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// TLS 1.2 and 1.3 with the ring provider, serving what `resolver` picks, no client
/// certificates, resuming sessions from tickets.
pub fn server_config(resolver: Arc<dyn ResolvesServerCert>) -> ServerConfig {
    let mut config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(PROTOCOL_VERSIONS)
            .expect("the ring provider has cipher suites for TLS 1.2 and 1.3")
            .with_no_client_auth()
            .with_cert_resolver(resolver);
    // Stateless tickets (encrypted with a key rotated every 6 hours, kept in memory): every
    // phone that reconnects resumes without a certificate signature, and hotline stores nothing
    // per session; rustls' session cache alone would remember only the last 256. Without a
    // random source for the key, full handshakes as before.
    if let Ok(ticketer) = rustls::crypto::ring::Ticketer::new() {
        config.ticketer = ticketer;
    }
    config
}

#[cfg(test)]
pub(crate) mod tests {
    use std::path::PathBuf;
    use std::{fs, io};

    use super::*;
    use crate::certificate::{TlsIdentity, fingerprint, load_or_generate};
    use crate::data_dir::DataDir;
    use crate::net::socket::bind_tcp;
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    use rustls::pki_types::ServerName;
    use rustls::{ClientConfig, ProtocolVersion, RootCertStore, SupportedProtocolVersion};
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    use tempfile::TempDir;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;
    use tokio_rustls::{TlsAcceptor, TlsConnector};

    const MESSAGE: &[u8] = b"OPTIONS sip:hotline.test SIP/2.0\r\nContent-Length: 0\r\n\r\n";

    fn write(dir: &TempDir, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = dir.path().join(name);
        fs::write(&path, contents).unwrap();
        path
    }

    /// Connects with a client that trusts only `root`, sends MESSAGE and expects it echoed.
    async fn echo_over_tls(
        identity: &crate::certificate::TlsIdentity,
        root: CertificateDer<'static>,
        server_name: &str,
        version: &'static SupportedProtocolVersion,
    ) -> Result<ProtocolVersion, io::Error> {
        let listener = bind_tcp("[::1]:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor = TlsAcceptor::from(Arc::new(server_config(identity.current.clone())));
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let mut tls = acceptor.accept(tcp).await?;
            let mut buffer = [0; MESSAGE.len()];
            tls.read_exact(&mut buffer).await?;
            tls.write_all(&buffer).await?;
            tls.shutdown().await
        });

        let client = client_config(root, version);
        let tcp = TcpStream::connect(addr).await.unwrap();
        let server_name = ServerName::try_from(server_name.to_owned()).unwrap();
        let mut tls = TlsConnector::from(Arc::new(client))
            .connect(server_name, tcp)
            .await?;
        tls.write_all(MESSAGE).await?;
        let mut echoed = Vec::new();
        tls.read_to_end(&mut echoed).await?;
        assert_eq!(echoed, MESSAGE);
        server.await.unwrap()?;
        Ok(tls.get_ref().1.protocol_version().unwrap())
    }

    /// A client of `version` that trusts only `root`.
    pub(crate) fn client_config(
        root: CertificateDer<'static>,
        version: &'static SupportedProtocolVersion,
    ) -> ClientConfig {
        let mut roots = RootCertStore::empty();
        roots.add(root).unwrap();
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(&[version])
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth()
    }

    fn generated_root(identity: &TlsIdentity) -> CertificateDer<'static> {
        CertificateDer::from_pem_file(&identity.certificate).unwrap()
    }

    #[tokio::test]
    async fn handshakes_with_a_verifying_client_over_tls13_and_tls12() {
        for (domain, server_name) in [
            ("hotline.test", "hotline.test"),
            ("[::1]", "::1"),
            ("::1", "::1"),
        ] {
            let data = TempDir::new().unwrap();
            let identity = load_or_generate(&DataDir::new(data.path()), domain, None).unwrap();
            let root = generated_root(&identity);
            for (version, negotiated) in [
                (&rustls::version::TLS13, ProtocolVersion::TLSv1_3),
                (&rustls::version::TLS12, ProtocolVersion::TLSv1_2),
            ] {
                let result = echo_over_tls(&identity, root.clone(), server_name, version).await;
                assert_eq!(result.unwrap(), negotiated, "{domain} {negotiated:?}");
            }
        }
    }

    #[tokio::test]
    async fn client_rejects_a_certificate_for_another_name() {
        let data = TempDir::new().unwrap();
        let identity = load_or_generate(&DataDir::new(data.path()), "hotline.test", None).unwrap();
        let root = generated_root(&identity);
        let result = echo_over_tls(&identity, root, "other.test", &rustls::version::TLS13).await;
        let error = result.unwrap_err().to_string();
        assert!(error.contains("certificate not valid for name"), "{error}");
    }

    /// A ClientHello record of TLS 1.1 (no supported_versions extension), made by hand since
    /// rustls cannot speak TLS 1.1: an old phone.
    pub(crate) fn tls11_client_hello() -> Vec<u8> {
        let mut hello = vec![0x03, 0x02]; // client_version TLS 1.1
        hello.extend([0x42; 32]); // random
        hello.push(0); // no session id
        hello.extend([0x00, 0x04, 0xc0, 0x09, 0xc0, 0x13]); // ECDHE_*_AES_128_CBC_SHA
        hello.extend([0x01, 0x00]); // null compression
        // signature_algorithms (ecdsa_secp256r1_sha256), without which rustls stops earlier
        hello.extend([0x00, 0x08, 0x00, 0x0d, 0x00, 0x04, 0x00, 0x02, 0x04, 0x03]);
        let mut handshake = vec![0x01, 0x00, 0x00, hello.len() as u8];
        handshake.extend(hello);
        let mut record = vec![0x16, 0x03, 0x01, 0x00, handshake.len() as u8];
        record.extend(handshake);
        record
    }

    #[tokio::test]
    async fn refuses_tls11_with_a_protocol_version_alert() {
        let data = TempDir::new().unwrap();
        let identity = load_or_generate(&DataDir::new(data.path()), "hotline.test", None).unwrap();
        let listener = bind_tcp("[::1]:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor = TlsAcceptor::from(Arc::new(server_config(identity.current.clone())));
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            acceptor.accept(tcp).await.map(|_| ())
        });

        let record = tls11_client_hello();

        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.write_all(&record).await.unwrap();
        let mut alert = [0; 7];
        tcp.read_exact(&mut alert).await.unwrap();
        assert_eq!(alert[0], 0x15, "an alert record");
        assert_eq!(alert[3..], [0x00, 0x02, 0x02, 70], "fatal protocol_version");
        assert!(server.await.unwrap().is_err());
    }

    #[tokio::test]
    async fn loads_user_files_with_a_chain() {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["sip.example.org".to_owned()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();

        let files = TempDir::new().unwrap();
        let certificate = write(&files, "chain.pem", leaf.pem() + &ca.pem());
        let private_key = write(&files, "private.pem", key.serialize_pem());
        let data = TempDir::new().unwrap();
        let identity = load_or_generate(
            &DataDir::new(data.path()),
            "ignored.test",
            Some((&certificate, &private_key)),
        )
        .unwrap();
        assert!(!identity.generated);
        assert_eq!(identity.certificate, certificate);
        assert_eq!(identity.fingerprint_sha256, fingerprint(leaf.der()));
        assert!(!data.path().join("tls").exists());

        let version = echo_over_tls(
            &identity,
            ca.der().clone(),
            "sip.example.org",
            &rustls::version::TLS13,
        )
        .await
        .unwrap();
        assert_eq!(version, ProtocolVersion::TLSv1_3);
    }
}
