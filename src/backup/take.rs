//! Gathering a backup: the records from the running server (or the database when none runs),
//! the password key, the configuration and the TLS files.

use std::fs;
use std::io::Read as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

use super::{Backup, DataFile, Records, VERSION, hex};
use crate::clock::wall_ms;
use crate::config::Config;
use crate::control::{self, ControlError, Reply, Request};
use crate::core::bans::Utc;
use crate::data_dir::DataDir;
use crate::store::Store;
use crate::web::provision::password::KEY_LEN;

/// The data directory's subdirectory backed up whole: certificate, key, ACME account.
pub const TLS_DIR: &str = "tls";

/// Files and bytes taken from `tls/`: far more than a certificate, a key and an ACME account
/// need, and a bound on what a stray directory there could add.
const MAX_FILES: usize = 64;
const MAX_FILE_BYTES: u64 = 1 << 20;

/// Gathers a backup of the hotline that `config` (read from `config_path`, if any) describes.
/// While a server runs, it sends the records over the control socket, from one read
/// transaction; otherwise the database is read here.
pub fn take(config_path: Option<&Path>, config: &Config) -> anyhow::Result<Backup> {
    let data_dir = &config.data_dir;
    let records = match control::call(&DataDir::new(data_dir).control_socket(), &Request::Snapshot)
    {
        Ok(Reply::Snapshot { records }) => records,
        Ok(Reply::Failed { message }) => bail!("{message}"),
        Ok(other) => bail!("the server answered {other:?} to a snapshot request"),
        Err(ControlError::NoServer { .. }) => {
            let database = DataDir::new(data_dir).database();
            if !database.exists() {
                bail!(
                    "there is no database at {}: nothing to back up (is `data_dir` right in the \
                     configuration?)",
                    database.display()
                );
            }
            let store = Store::open(&database)?;
            Records::from(&store.snapshot(wall_ms())?)
        }
        Err(error) => return Err(error.into()),
    };
    let config_text = config_path
        .map(|path| {
            fs::read_to_string(path)
                .with_context(|| format!("cannot read the configuration {}", path.display()))
        })
        .transpose()?;
    Ok(Backup {
        schema_version: VERSION,
        hotline_version: env!("CARGO_PKG_VERSION").to_owned(),
        created: Utc(wall_ms()).to_string(),
        config: config_text,
        password_key: password_key(&DataDir::new(data_dir).password_key())?,
        records,
        files: files(config)?,
    })
}

/// The password key in hex; `None` when no server or user command has made one yet.
fn password_key(path: &Path) -> anyhow::Result<Option<String>> {
    let cannot = || format!("cannot read {}", path.display());
    let file = match fs::File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error).with_context(cannot),
    };
    let mut key = Vec::with_capacity(KEY_LEN);
    file.take(KEY_LEN as u64 + 1)
        .read_to_end(&mut key)
        .with_context(cannot)?;
    if key.len() != KEY_LEN {
        bail!(
            "{} is {} bytes, not {KEY_LEN}: it is damaged, and the provisioning passwords with it",
            path.display(),
            key.len()
        );
    }
    Ok(Some(hex::encode(&key)))
}

/// Every regular file under `<data_dir>/tls`, and the configured certificate and key.
fn files(config: &Config) -> anyhow::Result<Vec<DataFile>> {
    let mut files = Vec::new();
    let tls = config.data_dir.join(TLS_DIR);
    let mut directories = vec![PathBuf::from(TLS_DIR)];
    while let Some(relative) = directories.pop() {
        let directory = config.data_dir.join(&relative);
        let entries = match fs::read_dir(&directory) {
            Ok(entries) => entries,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
            Err(error) => {
                return Err(error).with_context(|| format!("cannot read {}", directory.display()));
            }
        };
        for entry in entries {
            let entry = entry.with_context(|| format!("cannot read {}", directory.display()))?;
            let kind = entry.file_type()?;
            let name = relative.join(entry.file_name());
            if kind.is_dir() {
                directories.push(name);
            } else if kind.is_file() {
                let path = name
                    .to_str()
                    .with_context(|| format!("{} is not UTF-8", name.display()))?;
                files.push(read(&config.data_dir.join(&name), path)?);
            }
            if files.len() > MAX_FILES {
                bail!(
                    "{} holds more than {MAX_FILES} files: only the certificate, key and ACME \
                     account belong there",
                    tls.display()
                );
            }
        }
    }
    let configured = [&config.tls.certificate, &config.tls.private_key];
    for path in configured.into_iter().flatten() {
        let absolute = std::path::absolute(path)?;
        if absolute.starts_with(&tls) {
            continue;
        }
        let text = absolute
            .to_str()
            .with_context(|| format!("{} is not UTF-8", absolute.display()))?;
        files.push(read(&absolute, text)?);
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

fn read(path: &Path, name: &str) -> anyhow::Result<DataFile> {
    let cannot = || format!("cannot read {}", path.display());
    let metadata = fs::metadata(path).with_context(cannot)?;
    if metadata.len() > MAX_FILE_BYTES {
        bail!(
            "{} is larger than {MAX_FILE_BYTES} bytes: not a certificate or key",
            path.display()
        );
    }
    let contents = fs::read(path).with_context(cannot)?;
    Ok(DataFile {
        path: name.to_owned(),
        mode: metadata.permissions().mode() & 0o777,
        contents: hex::encode(&contents),
    })
}
