//! The server's certificate files: a PEM chain and its private key, loaded and checked, or a
//! self-signed pair that hotline makes in the data directory on first start and keeps, so that
//! phones which pinned it (or its fingerprint) keep trusting the server.

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rcgen::string::Ia5String;
use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, KeyPair,
    KeyUsagePurpose, SanType,
};
use std::sync::{PoisonError, RwLock};

use rustls::InconsistentKeys;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::data_dir::{DataDir, create_owner_only};
use crate::sip::Host;

/// Desk phones are rarely updated and fail hard on an expired certificate.
const VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 60 * 60);

/// Back-dating covers phones whose clocks run a little behind.
const CLOCK_SKEW: Duration = Duration::from_secs(24 * 60 * 60);

/// What the TLS listener serves, and what to show the user so they can check it on a phone.
pub struct TlsIdentity {
    /// What the TLS listeners serve; replacing it changes the certificate for new connections.
    pub current: Arc<CurrentCertificate>,
    /// The PEM file the chain was loaded from, for users who import it into their phones.
    pub certificate: PathBuf,
    /// SHA-256 of the leaf certificate as uppercase hex pairs joined by ':'.
    pub fingerprint_sha256: String,
    /// True when this start created the certificate.
    pub generated: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error(
        "{present} exists but {missing} does not; remove {present} to let hotline generate a new \
         self-signed certificate, or supply {missing} as well"
    )]
    IncompletePair { present: PathBuf, missing: PathBuf },
    #[error("{path} does not exist; correct the path in the configuration")]
    Missing { path: PathBuf },
    #[error("cannot read {path}: {source}; make it a file readable by the hotline user")]
    Unreadable { path: PathBuf, source: io::Error },
    #[error("{path} is not valid PEM ({source}); supply a PEM file as issued by your CA")]
    MalformedPem { path: PathBuf, source: pem::Error },
    #[error(
        "{path} contains no certificate; it must hold a '-----BEGIN CERTIFICATE-----' block, \
         the server certificate first, then any intermediates"
    )]
    NoCertificate { path: PathBuf },
    #[error(
        "{path} contains no private key; it must hold an unencrypted 'BEGIN PRIVATE KEY', \
         'BEGIN EC PRIVATE KEY' or 'BEGIN RSA PRIVATE KEY' block"
    )]
    NoPrivateKey { path: PathBuf },
    #[error(
        "{path} holds an unsupported private key ({source}); use an ECDSA (P-256, P-384), \
         Ed25519 or RSA (2048 bits or more) key"
    )]
    UnsupportedKey {
        path: PathBuf,
        source: rustls::Error,
    },
    #[error(
        "the first certificate in {path} cannot be used ({source}); supply a valid X.509 certificate"
    )]
    InvalidCertificate {
        path: PathBuf,
        source: rustls::Error,
    },
    #[error(
        "the private key in {private_key} does not belong to the certificate in {certificate}; \
         supply the key the certificate was issued for, with the server certificate first"
    )]
    KeyMismatch {
        certificate: PathBuf,
        private_key: PathBuf,
    },
    #[error(
        "cannot make a certificate for the domain {domain:?}; set the domain to a DNS name \
         (sip.example.org) or an IP address (2001:db8::1)"
    )]
    InvalidDomain { domain: String },
    #[error("cannot generate a certificate for {domain:?}: {source}")]
    Generate {
        domain: String,
        source: rcgen::Error,
    },
    #[error("cannot write {path}: {source}; make the data directory writable by the hotline user")]
    Write { path: PathBuf, source: io::Error },
}

/// With `files` (certificate and private key paths from the configuration) loads those PEM files;
/// otherwise uses the data directory's generated pair, generating a self-signed certificate for
/// `domain` on first start and reusing it after.
pub fn load_or_generate(
    data_dir: &DataDir,
    domain: &str,
    files: Option<(&Path, &Path)>,
) -> Result<TlsIdentity, TlsError> {
    if let Some((certificate, private_key)) = files {
        return load(certificate, private_key, false);
    }
    let dir = data_dir.tls();
    let certificate = data_dir.certificate();
    let private_key = data_dir.private_key();
    let generated = match (exists(&certificate)?, exists(&private_key)?) {
        (true, true) => false,
        (false, false) => {
            generate(&dir, &certificate, &private_key, domain)?;
            true
        }
        (true, false) => {
            return Err(TlsError::IncompletePair {
                present: certificate,
                missing: private_key,
            });
        }
        (false, true) => {
            return Err(TlsError::IncompletePair {
                present: private_key,
                missing: certificate,
            });
        }
    };
    load(&certificate, &private_key, generated)
}

fn exists(path: &Path) -> Result<bool, TlsError> {
    path.try_exists().map_err(|source| TlsError::Unreadable {
        path: path.to_owned(),
        source,
    })
}

fn load(certificate: &Path, private_key: &Path, generated: bool) -> Result<TlsIdentity, TlsError> {
    let certified_key = load_certified_key(certificate, private_key)?;
    let fingerprint_sha256 = fingerprint(&certified_key.cert[0]);
    Ok(TlsIdentity {
        current: CurrentCertificate::new(certified_key),
        certificate: certificate.to_owned(),
        fingerprint_sha256,
        generated,
    })
}

/// Reads a PEM chain and its private key, and checks that they belong together.
pub fn load_certified_key(
    certificate: &Path,
    private_key: &Path,
) -> Result<Arc<CertifiedKey>, TlsError> {
    let chain = read_certificates(certificate)?;
    let key = read_private_key(private_key)?;

    let provider = rustls::crypto::ring::default_provider();
    let signing_key = provider
        .key_provider
        .load_private_key(key)
        .map_err(|source| TlsError::UnsupportedKey {
            path: private_key.to_owned(),
            source,
        })?;
    let certified_key = CertifiedKey::new(chain, signing_key);
    match certified_key.keys_match() {
        // Like rustls itself, accept a key whose public half cannot be derived.
        Ok(()) | Err(rustls::Error::InconsistentKeys(InconsistentKeys::Unknown)) => {}
        Err(rustls::Error::InconsistentKeys(InconsistentKeys::KeyMismatch)) => {
            return Err(TlsError::KeyMismatch {
                certificate: certificate.to_owned(),
                private_key: private_key.to_owned(),
            });
        }
        Err(source) => {
            return Err(TlsError::InvalidCertificate {
                path: certificate.to_owned(),
                source,
            });
        }
    }
    Ok(Arc::new(certified_key))
}

fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let chain = CertificateDer::pem_file_iter(path)
        .map_err(|error| pem_error(path, error))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| pem_error(path, error))?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(chain)
}

fn read_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|error| match error {
        pem::Error::NoItemsFound => TlsError::NoPrivateKey {
            path: path.to_owned(),
        },
        error => pem_error(path, error),
    })
}

fn pem_error(path: &Path, error: pem::Error) -> TlsError {
    let path = path.to_owned();
    match error {
        pem::Error::Io(source) if source.kind() == io::ErrorKind::NotFound => {
            TlsError::Missing { path }
        }
        pem::Error::Io(source) => TlsError::Unreadable { path, source },
        source => TlsError::MalformedPem { path, source },
    }
}

pub(crate) fn fingerprint(der: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, der)
        .as_ref()
        .iter()
        .map(|byte| format!("{byte:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Writes a new pair durably. Each file appears atomically; a crash between the two leaves a
/// lone file, which [`load_or_generate`] reports rather than guessing.
fn generate(
    dir: &Path,
    certificate: &Path,
    private_key: &Path,
    domain: &str,
) -> Result<(), TlsError> {
    let (certificate_pem, key_pem) = self_signed(domain)?;
    let write_error = |source: io::Error| TlsError::Write {
        path: dir.to_owned(),
        source,
    };
    create_private_dir(dir)?;
    write_atomically(private_key, key_pem.as_bytes(), 0o600)?;
    write_atomically(certificate, certificate_pem.as_bytes(), 0o644)?;
    // The files' entries are synced by write_atomically; the directory's own must survive a
    // power cut too.
    if let Some(parent) = dir.parent().filter(|parent| !parent.as_os_str().is_empty()) {
        File::open(parent)
            .and_then(|parent| parent.sync_all())
            .map_err(write_error)?;
    }
    Ok(())
}

/// Returns the certificate and the PKCS#8 private key, both PEM.
fn self_signed(domain: &str) -> Result<(String, String), TlsError> {
    let invalid = || TlsError::InvalidDomain {
        domain: domain.to_owned(),
    };
    let generate_error = |source: rcgen::Error| TlsError::Generate {
        domain: domain.to_owned(),
        source,
    };
    let (subject_alt_name, common_name) = match Host::parse(domain).ok_or_else(invalid)? {
        Host::Ip(ip) => (SanType::IpAddress(ip), ip.to_string()),
        Host::Name(name) => (
            SanType::DnsName(Ia5String::try_from(name).map_err(|_| invalid())?),
            name.to_owned(),
        ),
    };

    let mut params = CertificateParams::default();
    params.subject_alt_names = vec![subject_alt_name];
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let now = SystemTime::now();
    params.not_before = (now - CLOCK_SKEW).into();
    params.not_after = (now + VALIDITY).into();

    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(generate_error)?;
    let certificate = params.self_signed(&key).map_err(generate_error)?;
    Ok((certificate.pem(), key.serialize_pem()))
}

/// Creates `dir` if need be, readable by the owner alone (also when it was there before).
pub fn create_private_dir(dir: &Path) -> Result<(), TlsError> {
    let write_error = |source: io::Error| TlsError::Write {
        path: dir.to_owned(),
        source,
    };
    create_owner_only(dir).map_err(write_error)?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(write_error)
}

/// Replaces `path` in one step, so a crash never leaves half a file behind.
pub fn write_atomically(path: &Path, contents: &[u8], mode: u32) -> Result<(), TlsError> {
    crate::atomic_file::write(path, contents, mode).map_err(|source| TlsError::Write {
        path: path.to_owned(),
        source,
    })
}

/// The server certificate, shared by the SIP TLS and HTTPS listeners and swapped while they run:
/// a renewal takes effect for the next handshake, and established connections keep theirs.
#[derive(Debug)]
pub struct CurrentCertificate(RwLock<Arc<CertifiedKey>>);

impl CurrentCertificate {
    pub fn new(key: Arc<CertifiedKey>) -> Arc<CurrentCertificate> {
        Arc::new(CurrentCertificate(RwLock::new(key)))
    }

    pub fn get(&self) -> Arc<CertifiedKey> {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn replace(&self, key: Arc<CertifiedKey>) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = key;
    }
}

impl ResolvesServerCert for CurrentCertificate {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.get())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tempfile::TempDir;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    fn write(dir: &TempDir, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = dir.path().join(name);
        fs::write(&path, contents).unwrap();
        path
    }

    /// A certificate for `name` and its PEM key, made the way a user's CA would.
    fn user_pair(name: &str) -> (rcgen::Certificate, KeyPair) {
        let key = KeyPair::generate().unwrap();
        let certificate = CertificateParams::new(vec![name.to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        (certificate, key)
    }

    fn generated_root(identity: &TlsIdentity) -> CertificateDer<'static> {
        CertificateDer::from_pem_file(&identity.certificate).unwrap()
    }

    #[test]
    fn generates_once_and_reuses() {
        let data = TempDir::new().unwrap();
        let first = load_or_generate(&DataDir::new(data.path()), "hotline.test", None).unwrap();
        assert!(first.generated);
        let dir = data.path().join("tls");
        assert_eq!(first.certificate, dir.join("cert.pem"));
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("key.pem")), 0o600);
        let files = |dir: &Path| {
            let mut names: Vec<_> = fs::read_dir(dir)
                .unwrap()
                .map(|entry| entry.unwrap().file_name())
                .collect();
            names.sort();
            names
        };
        assert_eq!(files(&dir), ["cert.pem", "key.pem"]);
        let certificate = fs::read(&first.certificate).unwrap();
        let key = fs::read(dir.join("key.pem")).unwrap();

        let second = load_or_generate(&DataDir::new(data.path()), "hotline.test", None).unwrap();
        assert!(!second.generated);
        assert_eq!(second.fingerprint_sha256, first.fingerprint_sha256);
        assert_eq!(fs::read(&second.certificate).unwrap(), certificate);
        assert_eq!(fs::read(dir.join("key.pem")).unwrap(), key);
    }

    #[test]
    fn fingerprint_is_sha256_of_the_leaf_in_colon_hex() {
        assert_eq!(
            fingerprint(b"abc"),
            "BA:78:16:BF:8F:01:CF:EA:41:41:40:DE:5D:AE:22:23:\
             B0:03:61:A3:96:17:7A:9C:B4:10:FF:61:F2:00:15:AD"
        );
        let data = TempDir::new().unwrap();
        let identity = load_or_generate(&DataDir::new(data.path()), "hotline.test", None).unwrap();
        assert_eq!(
            identity.fingerprint_sha256,
            fingerprint(&generated_root(&identity))
        );
    }

    #[test]
    fn broken_user_files_are_reported() {
        let files = TempDir::new().unwrap();
        let (certificate, key) = user_pair("sip.example.org");
        let (_, other_key) = user_pair("sip.example.org");
        let good_certificate = write(&files, "cert.pem", certificate.pem());
        let good_key = write(&files, "key.pem", key.serialize_pem());
        let garbage =
            |label: &str| format!("-----BEGIN {label}-----\nAAAA\n-----END {label}-----\n");
        let load = |certificate: &Path, private_key: &Path| {
            load_or_generate(
                &DataDir::new(files.path()),
                "sip.example.org",
                Some((certificate, private_key)),
            )
            .err()
            .unwrap()
        };
        let named = |error: &TlsError, path: &Path| {
            assert!(
                error.to_string().contains(&*path.to_string_lossy()),
                "{error} does not name {}",
                path.display()
            );
        };

        let missing = files.path().join("missing.pem");
        let error = load(&missing, &good_key);
        assert!(matches!(error, TlsError::Missing { .. }), "{error}");
        named(&error, &missing);
        let error = load(&good_certificate, &missing);
        assert!(matches!(error, TlsError::Missing { .. }), "{error}");

        let directory = files.path().join("directory.pem");
        fs::create_dir(&directory).unwrap();
        let error = load(&directory, &good_key);
        assert!(matches!(error, TlsError::Unreadable { .. }), "{error}");
        named(&error, &directory);

        let not_pem = write(&files, "not-pem.pem", "-----BEGIN CERTIFICATE-----\n!!!\n");
        let error = load(&not_pem, &good_key);
        assert!(matches!(error, TlsError::MalformedPem { .. }), "{error}");
        named(&error, &not_pem);

        let error = load(&good_key, &good_key);
        assert!(matches!(error, TlsError::NoCertificate { .. }), "{error}");
        named(&error, &good_key);

        let error = load(&good_certificate, &good_certificate);
        assert!(matches!(error, TlsError::NoPrivateKey { .. }), "{error}");
        named(&error, &good_certificate);

        let bad_key = write(&files, "bad-key.pem", garbage("PRIVATE KEY"));
        let error = load(&good_certificate, &bad_key);
        assert!(matches!(error, TlsError::UnsupportedKey { .. }), "{error}");
        named(&error, &bad_key);

        let bad_certificate = write(&files, "bad-cert.pem", garbage("CERTIFICATE"));
        let error = load(&bad_certificate, &good_key);
        assert!(
            matches!(error, TlsError::InvalidCertificate { .. }),
            "{error}"
        );
        named(&error, &bad_certificate);

        let wrong_key = write(&files, "wrong-key.pem", other_key.serialize_pem());
        let error = load(&good_certificate, &wrong_key);
        assert!(matches!(error, TlsError::KeyMismatch { .. }), "{error}");
        named(&error, &good_certificate);
        named(&error, &wrong_key);
    }

    #[test]
    fn half_a_generated_pair_is_reported() {
        for (present, missing) in [("cert.pem", "key.pem"), ("key.pem", "cert.pem")] {
            let data = TempDir::new().unwrap();
            load_or_generate(&DataDir::new(data.path()), "hotline.test", None).unwrap();
            let dir = data.path().join("tls");
            fs::remove_file(dir.join(missing)).unwrap();
            let error = load_or_generate(&DataDir::new(data.path()), "hotline.test", None)
                .err()
                .unwrap();
            assert!(matches!(error, TlsError::IncompletePair { .. }), "{error}");
            let message = error.to_string();
            for name in [present, missing] {
                assert!(
                    message.contains(&*dir.join(name).to_string_lossy()),
                    "{message}"
                );
            }
        }
    }

    #[test]
    fn domains_become_subject_alt_names() {
        for domain in ["[::1]", "::1", "192.0.2.1", "sip.example.org"] {
            let data = TempDir::new().unwrap();
            let identity = load_or_generate(&DataDir::new(data.path()), domain, None);
            assert!(identity.is_ok_and(|i| i.generated), "{domain}");
        }
        for invalid in [
            "",
            "[::1",
            "[sip.example.org]",
            "[192.0.2.1]",
            "two words",
            "ü.test",
        ] {
            assert!(Host::parse(invalid).is_none(), "{invalid:?}");
            let data = TempDir::new().unwrap();
            let result = load_or_generate(&DataDir::new(data.path()), invalid, None);
            assert!(
                matches!(result, Err(TlsError::InvalidDomain { .. })),
                "{invalid:?}"
            );
            assert!(!data.path().join("tls").exists());
        }
    }
}
