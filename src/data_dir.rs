//! The data directory's layout: what hotline keeps where. `hotline serve`, `hotline setup` and
//! the commands that manage users and bans find the database, the generated certificate and the
//! control socket through this one map.

use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
#[error("cannot create the data directory {}: {error}", path.display())]
pub struct CreateError {
    path: PathBuf,
    error: io::Error,
}

/// The data directory (`data_dir` in the configuration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataDir(PathBuf);

impl DataDir {
    pub fn new(path: impl Into<PathBuf>) -> DataDir {
        DataDir(path.into())
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Creates the directory, owner-only, if it is not there.
    pub fn create(&self) -> Result<(), CreateError> {
        create_owner_only(&self.0).map_err(|error| CreateError {
            path: self.0.clone(),
            error,
        })
    }

    /// The redb file: users, bindings, bans and the install's secret.
    pub fn database(&self) -> PathBuf {
        self.0.join("hotline.redb")
    }

    /// The key provisioning passwords are derived from (see
    /// [`crate::web::provision::password`]), kept outside the database on purpose: the database
    /// alone gives no password away.
    pub fn password_key(&self) -> PathBuf {
        self.0.join("password.key")
    }

    /// The Unix socket of the control protocol (see [`crate::control`]).
    pub fn control_socket(&self) -> PathBuf {
        self.0.join("control.sock")
    }

    /// The directory of the generated self-signed certificate.
    pub fn tls(&self) -> PathBuf {
        self.0.join("tls")
    }

    /// The generated certificate, PEM.
    pub fn certificate(&self) -> PathBuf {
        self.tls().join("cert.pem")
    }

    /// The generated certificate's private key, PEM.
    pub fn private_key(&self) -> PathBuf {
        self.tls().join("key.pem")
    }
}

/// Creates `path` and its missing parents with mode 0700: the data directory holds secrets.
pub fn create_owner_only(path: &Path) -> io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
}
