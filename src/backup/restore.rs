//! Putting a backup back: the configuration file, the TLS files, then the database in one
//! transaction and the password key beside it.

use std::fs::{self};
use std::io::Write as _;

use std::path::{Component, Path, PathBuf};

use anyhow::{Context as _, anyhow, bail};

use super::take::TLS_DIR;
use super::{Backup, Missing, hex};
use crate::config::Config;
use crate::data_dir::DataDir;
use crate::setup::{board, file};
use crate::store::{OWNER_PASSWORD_KEY, Snapshot, StoreError};
use crate::web::provision::password::KEY_LEN;

/// Where and how to restore.
pub struct Restore {
    /// The configuration file to write (the backup's configuration goes there).
    pub config_path: PathBuf,
    /// Restore into this data directory instead of the one the backup's configuration names;
    /// the configuration written names it.
    pub data_dir: Option<PathBuf>,
    /// Replace a database that holds users already.
    pub replace: bool,
}

/// What was restored.
#[derive(Debug)]
pub struct Restored {
    pub config: Config,
    /// The previous configuration file, kept under this name.
    pub previous_config: Option<PathBuf>,
    pub users: usize,
    pub bans: usize,
    pub bindings: usize,
    /// Extensions with a provisioning link.
    pub links: usize,
    pub owner_password: bool,
    pub files: Vec<PathBuf>,
    /// What the backup could not bring back.
    pub missing: Vec<Missing>,
}

/// Restores `backup`. Everything is checked before anything is written; the server must not be
/// running on the data directory (the database would be locked).
pub fn restore(options: &Restore, backup: &Backup) -> anyhow::Result<Restored> {
    let mut snapshot = Snapshot::try_from(&backup.records)?;
    let password_key = backup
        .password_key
        .as_deref()
        .map(|text| {
            hex::decode(text)
                .filter(|key| key.len() == KEY_LEN)
                .ok_or_else(|| anyhow!("the backup's password key is not {KEY_LEN} bytes in hex"))
        })
        .transpose()?;
    let salts = snapshot
        .provisioning
        .iter()
        .any(|(_, row)| row.password_salt.is_some());
    let missing = Missing::of(backup, salts);
    if password_key.is_none() {
        // Without their key, salts would derive passwords that match no HA1.
        for (_, row) in &mut snapshot.provisioning {
            row.password_salt = None;
        }
    }
    let config_text = match &backup.config {
        Some(text) => Some(with_data_dir(text, options.data_dir.as_deref())?),
        None => None,
    };
    let mut config = match &config_text {
        Some(text) => {
            Config::parse(text).map_err(|e| anyhow!("the backup's configuration: {e}"))?
        }
        None if options.config_path.exists() => Config::load(Some(&options.config_path))?,
        None => Config::load(None)?,
    };
    if let (None, Some(dir)) = (&config_text, &options.data_dir) {
        config.data_dir.clone_from(dir);
    }
    let data_dir = config.data_dir.clone();
    let files = backup
        .files
        .iter()
        .map(|file| {
            let contents = hex::decode(&file.contents)
                .ok_or_else(|| anyhow!("the backup's file {} is not hex", file.path))?;
            Ok((destination(&config, &file.path)?, file.mode, contents))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;

    let store =
        board::open_store(&data_dir).map_err(|error| match error.downcast_ref::<StoreError>() {
            Some(StoreError::Locked { .. }) => anyhow!(
                "hotline is running on {}: stop it first (`systemctl stop {}`, or end `hotline \
                 serve`), restore, then start it again",
                data_dir.display(),
                board::SERVICE
            ),
            _ => error,
        })?;
    let existing = store.users()?;
    if !existing.is_empty() && !options.replace {
        let names: Vec<String> = existing.iter().map(|u| u.extension.to_string()).collect();
        bail!(
            "{} already holds {} extensions ({}): restoring replaces them all; add --replace to \
             go ahead",
            DataDir::new(data_dir).database().display(),
            existing.len(),
            names.join(", ")
        );
    }

    let previous_config = match &config_text {
        Some(text) => file::write(&options.config_path, text).with_context(|| {
            format!(
                "cannot write the configuration file {}: run `hotline restore` as root, or \
                 choose another file with `hotline --config FILE restore`",
                options.config_path.display()
            )
        })?,
        None => None,
    };
    let tls = data_dir.join(TLS_DIR);
    if files.iter().any(|(path, ..)| path.starts_with(&tls)) {
        match fs::remove_dir_all(&tls) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                return Err(error).with_context(|| format!("cannot replace {}", tls.display()));
            }
            _ => {}
        }
    }
    let mut written = Vec::new();
    for (path, mode, contents) in files {
        write(&path, mode, &contents)?.commit()?;
        written.push(path);
    }
    // The key is put in place with the records it belongs to: staged before their transaction,
    // renamed after it commits.
    let key = password_key
        .map(|key| write(&DataDir::new(&data_dir).password_key(), 0o600, &key))
        .transpose()?;
    store.restore(&snapshot)?;
    if let Some(key) = key {
        key.commit()?;
    }
    drop(store);
    board::give_to_data_dir_owner(&data_dir)?;
    if config_text.is_some() {
        // What the server will read: the domain from the hostname if unset, validated.
        config = Config::load(Some(&options.config_path))?;
    }
    Ok(Restored {
        config,
        previous_config,
        users: snapshot.users.len(),
        bans: snapshot.bans.len(),
        bindings: snapshot.bindings.len(),
        links: snapshot
            .provisioning
            .iter()
            .filter(|(_, row)| row.link.is_some())
            .count(),
        owner_password: snapshot.secrets.contains_key(OWNER_PASSWORD_KEY),
        files: written,
        missing,
    })
}

/// The configuration text with `data_dir` replaced, if asked.
fn with_data_dir(text: &str, data_dir: Option<&Path>) -> anyhow::Result<String> {
    let Some(data_dir) = data_dir else {
        return Ok(text.to_owned());
    };
    let mut table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| anyhow!("the backup's configuration: {}", e.message()))?;
    table.insert(
        "data_dir".into(),
        toml::Value::String(data_dir.display().to_string()),
    );
    Ok(file::render(&table)?)
}

/// Where a file of the backup goes: a plain relative path inside the data directory, or the
/// path of `tls.certificate` or `tls.private_key` exactly. Nothing else, whatever the file says.
fn destination(config: &Config, path: &str) -> anyhow::Result<PathBuf> {
    let path = Path::new(path);
    if path.is_absolute() {
        let configured = [&config.tls.certificate, &config.tls.private_key];
        if configured
            .into_iter()
            .flatten()
            .any(|named| std::path::absolute(named).is_ok_and(|named| named == path))
        {
            return Ok(path.to_owned());
        }
        bail!(
            "the backup holds {}, which the configuration does not name as its certificate or key",
            path.display()
        );
    }
    let in_tls = path
        .strip_prefix(TLS_DIR)
        .is_ok_and(|rest| !rest.as_os_str().is_empty());
    if in_tls && path.components().all(|c| matches!(c, Component::Normal(_))) {
        return Ok(config.data_dir.join(path));
    }
    bail!(
        "the backup holds a file at {}, outside the data directory's {TLS_DIR}/",
        path.display()
    )
}

/// A file written under a temporary name, put in place by [`Staged::commit`].
#[must_use]
struct Staged {
    temporary: PathBuf,
    path: PathBuf,
}

impl Staged {
    /// Renames the file into place: a crash leaves the old file or the new one, whole.
    fn commit(self) -> anyhow::Result<()> {
        let cannot = || format!("cannot write {}", self.path.display());
        fs::rename(&self.temporary, &self.path).with_context(cannot)?;
        // The rename is durable once the directory is.
        let directory = self.path.parent().unwrap_or(Path::new("/"));
        fs::File::open(directory)
            .and_then(|directory| directory.sync_all())
            .with_context(cannot)
    }
}

/// Writes a file with `mode` (owner bits at least) under a temporary name beside `path`,
/// creating its directory owner-only.
fn write(path: &Path, mode: u32, contents: &[u8]) -> anyhow::Result<Staged> {
    let cannot = || format!("cannot write {}", path.display());
    if let Some(parent) = path.parent() {
        crate::data_dir::create_owner_only(parent).with_context(cannot)?;
    }
    let temporary = crate::atomic_file::beside(path, ".restoring");
    let mut file =
        crate::atomic_file::create_fresh(&temporary, mode & 0o777 | 0o600).with_context(cannot)?;
    file.write_all(contents).with_context(cannot)?;
    file.sync_all().with_context(cannot)?;
    Ok(Staged {
        temporary,
        path: path.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_go_only_where_the_configuration_says() {
        let mut config = Config {
            data_dir: PathBuf::from("/var/lib/hotline"),
            ..Config::default()
        };
        config.tls.certificate = Some(PathBuf::from("/etc/hotline/cert.pem"));
        config.tls.private_key = Some(PathBuf::from("/etc/hotline/key.pem"));
        let to = |path: &str| destination(&config, path).map_err(|e| e.to_string());
        assert_eq!(
            to("tls/key.pem").unwrap(),
            Path::new("/var/lib/hotline/tls/key.pem")
        );
        assert_eq!(
            to("/etc/hotline/key.pem").unwrap(),
            Path::new("/etc/hotline/key.pem")
        );
        for outside in [
            "/etc/passwd",
            "../x",
            "tls/../../x",
            "./tls/x",
            "/etc/hotline/../shadow",
            "hotline.redb",
            "password.key",
            "tlsx/key.pem",
            "tls",
        ] {
            assert!(to(outside).is_err(), "{outside}");
        }
    }
}
