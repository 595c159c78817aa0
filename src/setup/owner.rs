//! Step 5: the owner's password, for the owner's pages on the HTTPS listener. It is stored as
//! `hotline owner passwd` stores it: an argon2id PHC string (see [`crate::web::owner::password`]).

use std::path::Path;

use anyhow::{anyhow, bail};

use super::Dialog;
use crate::config::Config;
use crate::control::{self, ControlError, Reply, Request};
use crate::data_dir::DataDir;
use crate::store::Store;
use crate::web::owner::password::{self, MIN_LENGTH};
use crate::web::provision::link;

/// The answers-file key of the password.
const KEY: &str = "owner_password";

/// Whether the owner has a password already: asked of the running server, or read from the
/// database when there is one.
pub(super) fn has_password(data_dir: &Path) -> anyhow::Result<bool> {
    let data_dir = DataDir::new(data_dir);
    match control::call(&data_dir.control_socket(), &Request::HasOwnerPassword) {
        Ok(Reply::OwnerPassword { set }) => return Ok(set),
        Ok(other) => {
            bail!("the hotline server answered {other:?} to whether the owner has a password")
        }
        Err(ControlError::NoServer { .. }) => {}
        Err(error) => return Err(error.into()),
    }
    let database = data_dir.database();
    if !database.exists() {
        return Ok(false);
    }
    Ok(Store::open(&database)?.owner_password()?.is_some())
}

/// Asks for the owner's password: twice on a terminal, without echo, or from the answers file's
/// `owner_password`. An empty answer keeps the password there is (`None`); a new one comes back
/// hashed.
pub(super) fn ask_password(
    dialog: &mut Dialog<'_>,
    config: &Config,
    has_password: bool,
    given: Option<&str>,
) -> anyhow::Result<Option<String>> {
    dialog.say(&format!(
        "The owner's pages, at {}/, show the phones online, the calls and the security events, \
         and manage the extensions, behind one password: yours. Choose one of at least \
         {MIN_LENGTH} characters; `hotline owner passwd` changes it later.",
        link::base(config)
    ))?;
    if has_password {
        dialog.say("The owner has a password already: an empty answer keeps it.")?;
    }
    if !dialog.interactive() {
        return from_answers(dialog, has_password, given);
    }
    loop {
        let first = dialog.read_secret("Owner password (not shown as you type)")?;
        let problem = match password::check(&first) {
            _ if first.is_empty() && has_password => {
                dialog.say("  Kept.")?;
                return Ok(None);
            }
            _ if first.is_empty() => {
                format!(
                    "the owner's pages need a password: choose one of at least {MIN_LENGTH} characters"
                )
            }
            Err(error) => error.to_string(),
            Ok(()) if dialog.read_secret("The same again")? == first => {
                return Ok(Some(password::hash(&first)?));
            }
            Ok(()) => "the two passwords differ: type the same one twice".to_owned(),
        };
        dialog.say(&format!("  {problem}\n  Please try again."))?;
    }
}

fn from_answers(
    dialog: &mut Dialog<'_>,
    has_password: bool,
    given: Option<&str>,
) -> anyhow::Result<Option<String>> {
    let source = dialog.source.display().to_string();
    let wrong = |message: String| anyhow!("{source}: `{KEY}`: {message}");
    match given.filter(|given| !given.is_empty()) {
        None if has_password => {
            dialog.say("Owner password: kept")?;
            Ok(None)
        }
        None => Err(wrong(format!(
            "the owner's pages need a password: add `{KEY} = \"…\"` with at least {MIN_LENGTH} \
             characters"
        ))),
        Some(given) => {
            let hash = password::hash(given).map_err(|error| wrong(error.to_string()))?;
            dialog.say("Owner password: set, from the answers file")?;
            Ok(Some(hash))
        }
    }
}
