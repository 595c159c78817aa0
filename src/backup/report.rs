//! What `hotline backup` and `hotline restore` tell the person who ran them.

use std::fmt::Write as _;
use std::path::Path;

use super::{Backup, Records, Restore, Restored};
use crate::store::OWNER_PASSWORD_KEY;

/// The extensions with a provisioning link.
fn links(records: &Records) -> usize {
    records
        .provisioning
        .iter()
        .filter(|row| row.link_hash.is_some())
        .count()
}

/// After a backup: what it holds, and how to get it off the board.
pub fn summary(backup: &Backup, file: &Path, encrypted: bool) -> String {
    let records = &backup.records;
    let mut text = format!(
        "Wrote {} ({}readable by its owner only): {} extensions, {} bans, {} bindings, {} \
         provisioning links, {} files{}{}.",
        file.display(),
        if encrypted { "encrypted, " } else { "" },
        records.users.len(),
        records.bans.len(),
        records.bindings.len(),
        links(records),
        backup.files.len(),
        if records.secrets.contains_key(OWNER_PASSWORD_KEY) {
            ", the owner's password"
        } else {
            ""
        },
        if backup.config.is_some() {
            " and the configuration"
        } else {
            ""
        },
    );
    if !encrypted {
        text.push_str(
            "\nIt holds the TLS private key, the password hashes and the key the phones' \
             passwords are derived from: keep it where only you can read it (or make it with \
             --encrypt).",
        );
    }
    let absolute = std::path::absolute(file).unwrap_or_else(|_| file.to_owned());
    let _ = write!(
        text,
        "\nCopy it off the board, from your computer:\n  scp 'root@[ADDRESS]:{}' .\n\
         On a new card: copy it back the same way, then `hotline restore {}`.",
        absolute.display(),
        file.file_name().map_or_else(
            || file.display().to_string(),
            |n| n.to_string_lossy().into_owned()
        )
    );
    text
}

/// After a restore: what came back, and what to do next.
pub fn restored_summary(restored: &Restored, options: &Restore) -> String {
    let mut text = format!(
        "Restored {} extensions with their passwords, {} bans, {} bindings, {} provisioning \
         links{} into {}.",
        restored.users,
        restored.bans,
        restored.bindings,
        restored.links,
        if restored.owner_password {
            ", the owner's password"
        } else {
            ""
        },
        restored.config.data_dir.display()
    );
    for missing in &restored.missing {
        let _ = write!(text, "\n{missing}");
    }
    for file in &restored.files {
        let _ = write!(text, "\nRestored {}.", file.display());
    }
    let _ = write!(
        text,
        "\nConfiguration: {} (domain {}).",
        options.config_path.display(),
        restored.config.domain
    );
    if let Some(previous) = &restored.previous_config {
        let _ = write!(
            text,
            " The previous file is kept as {}.",
            previous.display()
        );
    }
    let _ = write!(
        text,
        "\nStart hotline: `systemctl restart {}`, or `hotline --config {} serve`.",
        crate::setup::board::SERVICE,
        options.config_path.display()
    );
    text
}
