//! The wizard's first and last questions: restore a backup on a new card, and make one at the
//! end (see [`crate::backup`]).

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use super::{
    Answers, Dialog, Environment, Options, Outcome, SERVICE, WIDTH, describe, systemctl_run, wrap,
};
use crate::backup::{self, Backup, Restore, passphrase};
use crate::config::Config;
use crate::control::UserSummary;

/// The name of the backup the wizard offers, in the home directory.
const FILE_NAME: &str = "hotline.backup";

/// On a board not set up yet (no domain in the configuration), or when the answers file names
/// a `restore` file: restores it, (re)starts the service and ends the wizard. `None`: no
/// backup was given, the wizard goes on.
pub(super) fn offer_restore(
    options: &Options,
    environment: &Environment,
    dialog: &mut Dialog<'_>,
    answers: &Answers,
    set_up: bool,
) -> anyhow::Result<Option<Outcome>> {
    let file = match (dialog.interactive(), &answers.restore) {
        (_, Some(file)) => file.clone(),
        (false, None) => return Ok(None),
        (true, None) if set_up => return Ok(None),
        (true, None) => {
            dialog.say(
                "\nA new card for a hotline you had? Give the backup file that `hotline backup` \
                 wrote (copy it here first: scp hotline.backup 'root@[ADDRESS]:'), and every \
                 extension comes back with its password. Press Enter to set up a new hotline.",
            )?;
            let file: String = dialog.ask("restore", "Backup file", "", None, |t| Ok(t.into()))?;
            if file.is_empty() {
                return Ok(None);
            }
            PathBuf::from(file)
        }
    };
    let text = backup::read_file(&file)?;
    let passphrase = match (Backup::is_encrypted(&text), &answers.passphrase_file) {
        (false, _) => None,
        (true, Some(path)) => Some(passphrase::from_file(path)?),
        (true, None) => match dialog.input.as_mut() {
            Some(input) => Some(passphrase::read_hidden("Passphrase: ", &mut **input)?),
            None => anyhow::bail!(
                "{}: `restore`: the backup is encrypted: name a file holding its passphrase \
                 with `passphrase_file`",
                dialog.source.display()
            ),
        },
    };
    let taken = Backup::decode(&text, passphrase.as_deref())
        .with_context(|| format!("cannot restore {}", file.display()))?;
    let systemctl = environment.systemctl.as_deref().filter(|_| options.service);
    if let Some(systemctl) = systemctl {
        systemctl_run(systemctl, &["stop", SERVICE])?;
    }
    let restore = Restore {
        config_path: options.config_path.clone(),
        data_dir: None,
        replace: false,
    };
    let restored = backup::restore(&restore, &taken);
    // Started again whether or not the restore worked, so that a failed one leaves hotline running.
    let started =
        systemctl.map(|systemctl| systemctl_run(systemctl, &["enable", "--now", SERVICE]));
    let restored = restored?;
    let mut text = backup::restored_summary(&restored, &restore);
    if let Some(started) = started {
        started?;
        text = format!(
            "{}\nhotline is started ({SERVICE}), and starts at every boot.",
            text.lines()
                .filter(|line| !line.starts_with("Start hotline"))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    dialog.say(&text)?;
    let kept: Vec<UserSummary> = taken
        .records
        .users
        .iter()
        .map(|user| UserSummary {
            extension: user.extension.clone(),
            display_name: user.display_name.clone(),
        })
        .collect();
    if !kept.is_empty() {
        let names: Vec<String> = kept.iter().map(describe).collect();
        dialog.say(&format!(
            "Back, with their passwords: {}.",
            names.join(", ")
        ))?;
    }
    Ok(Some(Outcome {
        config: restored.config,
        passwords: Vec::new(),
        kept,
        fingerprint: None,
    }))
}

/// Offers a backup of what the wizard made, and says how to copy it off the board. From an
/// answers file, only when it names a `backup` file.
pub(super) fn offer_backup(
    options: &Options,
    environment: &Environment,
    dialog: &mut Dialog<'_>,
    answers: &Answers,
    config: &Config,
) -> anyhow::Result<()> {
    let file = match (dialog.interactive(), &answers.backup) {
        (_, Some(file)) => file.clone(),
        (false, None) => return Ok(()),
        (true, None) => {
            dialog.say(
                "\nA backup keeps this hotline alive when the SD card dies: the extensions with \
                 their passwords, the certificate, the configuration. Make one now (and again \
                 after adding extensions, with `hotline backup FILE`).",
            )?;
            let default = environment.home.as_ref().map_or_else(
                || "no".to_owned(),
                |home| home.join(FILE_NAME).display().to_string(),
            );
            let file: Option<PathBuf> =
                dialog.ask("backup", "Backup file, or `no`", &default, None, |text| {
                    Ok(match text {
                        "" | "no" | "n" => None,
                        path => Some(PathBuf::from(path)),
                    })
                })?;
            match file {
                Some(file) => file,
                None => return Ok(()),
            }
        }
    };
    let taken = backup::take(Some(&options.config_path), config)?;
    let text = taken.encode(None)?;
    backup::write_file(&file, &text)
        .with_context(|| format!("cannot write the backup {}", file.display()))?;
    let summary = backup::summary(&taken, &file, false);
    writeln!(dialog.output, "{}", wrap(&summary, WIDTH))?;
    Ok(())
}

/// `$HOME`, where the wizard offers to put the backup.
pub(super) fn home() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .filter(|home| Path::new(home).is_absolute())
}
