//! Passphrases: from a file for scripts, or typed on the terminal without echo.

use std::io::{BufRead, IsTerminal as _};
use std::path::Path;

use anyhow::{Context as _, anyhow, bail};

use crate::terminal::read_secret;

/// Shortest passphrase accepted for a new backup.
pub const MIN_LEN: usize = 8;

/// The passphrase of a new backup: from `file`, or asked (twice) on the terminal when `ask`;
/// `None` for an unencrypted backup. At least [`MIN_LEN`] characters.
pub fn for_new_backup(file: Option<&Path>, ask: bool) -> anyhow::Result<Option<String>> {
    let passphrase = match (file, ask) {
        (Some(path), _) => from_file(path)?,
        (None, true) => self::ask(true)?,
        (None, false) => return Ok(None),
    };
    if passphrase.chars().count() < MIN_LEN {
        bail!("the passphrase is shorter than {MIN_LEN} characters: choose a longer one");
    }
    Ok(Some(passphrase))
}

/// The first line of `path`.
pub fn from_file(path: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the passphrase file {}", path.display()))?;
    Ok(text.lines().next().unwrap_or_default().to_owned())
}

/// Asks on the terminal, twice for a new passphrase (`confirm`).
pub fn ask(confirm: bool) -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        bail!("no terminal to ask the passphrase on: give it with --passphrase-file FILE");
    }
    let first = read_hidden("Passphrase: ", &mut stdin.lock())?;
    if confirm && read_hidden("The same passphrase again: ", &mut stdin.lock())? != first {
        bail!("the two passphrases differ: run the command again");
    }
    Ok(first)
}

/// Reads a line from `input` with the terminal's echo off (when standard input is one).
pub fn read_hidden(prompt: &str, input: &mut dyn BufRead) -> anyhow::Result<String> {
    read_secret(prompt, input)?.ok_or_else(|| anyhow!("the input ended before the passphrase"))
}
