//! The local control protocol, so that `hotline user …` and `hotline ban …` work while
//! `hotline serve` holds the database (redb lets one process at a time open the file).
//!
//! The server listens on [`crate::data_dir::DataDir::control_socket`] in the data directory. A client connects, writes one
//! [`Request`] as TOML text, shuts down its write half and reads one [`Reply`] as TOML text until
//! the server closes the connection. Either side refuses a message longer than [`MAX_MESSAGE`],
//! except the reply to [`Request::Snapshot`], which may be as long as [`MAX_SNAPSHOT`]
//! ([`Request::reply_limit`]).
//! Anyone who can connect can manage users, so the socket must be reachable by the administrator
//! alone.
//!
//! When no server is running, the CLI opens the database itself and runs the same [`execute`].

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ring::rand::SecureRandom;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::backup::records::Records;
use crate::core::bans::{Ban, ScopeError, Target};
use crate::core::user::{Extension, User};
use crate::store::{Store, StoreError};
use crate::web::provision::link;
use crate::web::provision::password::{PasswordKey, new_salt};

/// The longest request or reply: a user list of some ten thousand users.
pub const MAX_MESSAGE: usize = 1 << 20;

/// The longest reply to [`Request::Snapshot`], for `hotline backup`: some twenty-five thousand
/// users with a link and a binding each (about 650 bytes), and well within what a restore reads
/// ([`crate::backup::MAX_FILE_BYTES`]) even encrypted, which doubles the size.
pub const MAX_SNAPSHOT: usize = 16 << 20;

/// Longest display name accepted, in characters.
pub const MAX_DISPLAY_NAME: usize = 64;

/// How long the client waits for the server, which may be busy with a batch of writes.
const TIMEOUT: Duration = Duration::from_secs(30);

/// How long `hotline cert renew` waits: an ACME order polls the CA for up to two minutes.
const RENEW_TIMEOUT: Duration = Duration::from_secs(180);

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    AddUser {
        extension: String,
        display_name: String,
    },
    ResetPassword {
        extension: String,
    },
    RemoveUser {
        extension: String,
    },
    /// A new display name; the password stays.
    RenameUser {
        extension: String,
        display_name: String,
    },
    /// Stores the owner's new password hash (argon2id PHC string, made by the client), which
    /// ends every session of the owner's pages.
    SetOwnerPassword {
        hash: String,
    },
    /// Whether the owner has a password: the wizard offers to keep it.
    HasOwnerPassword,
    /// Makes a new provisioning link for the extension (ending the old one), or with `revoke`
    /// only ends it.
    ProvisionUser {
        extension: String,
        revoke: bool,
    },
    ListUsers,
    ListBans,
    /// Lifts the bans `scope` names (see [`Target`]): an address, or an exact prefix.
    RemoveBan {
        scope: String,
    },
    /// Obtains a new certificate from the ACME CA now; only the server carries it out.
    RenewCertificate,
    /// Every record of the database, from one read transaction: for `hotline backup`.
    Snapshot,
}

impl Request {
    /// The longest reply the client reads, and the server sends.
    pub fn reply_limit(&self) -> usize {
        match self {
            Request::Snapshot => MAX_SNAPSHOT,
            _ => MAX_MESSAGE,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum Reply {
    /// The password and the provisioning link's token are shown this once; only hashes of the
    /// token and the password are stored.
    Created {
        user: UserSummary,
        password: String,
        token: String,
    },
    /// A new provisioning link. `password` is a new password when the old one could not be put
    /// into vendor files (it predates provisioning).
    Provisioned {
        user: UserSummary,
        token: String,
        password: Option<String>,
    },
    LinkRevoked {
        extension: String,
    },
    PasswordReset {
        user: UserSummary,
        password: String,
    },
    Removed {
        extension: String,
    },
    Renamed {
        user: UserSummary,
    },
    OwnerPasswordSet,
    OwnerPassword {
        set: bool,
    },
    Users {
        users: Vec<UserSummary>,
    },
    Bans {
        bans: Vec<BanSummary>,
    },
    /// The scopes whose bans were lifted.
    BansLifted {
        scopes: Vec<String>,
    },
    /// What the new certificate is for, from whom and until when.
    CertificateRenewed {
        message: String,
    },
    Snapshot {
        records: Records,
    },
    /// A message for the person at the CLI: what is wrong and how to fix it.
    Failed {
        message: String,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserSummary {
    pub extension: String,
    pub display_name: String,
}

impl From<&User> for UserSummary {
    fn from(user: &User) -> UserSummary {
        UserSummary {
            extension: user.extension.to_string(),
            display_name: user.display_name.clone(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BanSummary {
    pub scope: String,
    /// Unix time in milliseconds when the ban ends.
    pub until_ms: u64,
    pub reason: String,
}

impl From<&Ban> for BanSummary {
    fn from(ban: &Ban) -> BanSummary {
        BanSummary {
            scope: ban.scope.to_string(),
            until_ms: ban.until_ms,
            reason: ban.reason.clone(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The socket is missing or nobody accepts on it: the CLI may open the database itself.
    #[error("no hotline server is listening on {}", socket.display())]
    NoServer { socket: PathBuf },
    #[error("cannot talk to the hotline server on {}: {source}", socket.display())]
    Io { socket: PathBuf, source: io::Error },
    #[error("control message is longer than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("malformed control message: {0}")]
    Malformed(String),
    #[error("cannot encode control message: {0}")]
    Encode(#[from] toml::ser::Error),
}

/// What user management needs beside the store: the realm the HA1s are for, and the key
/// passwords are derived from (see [`crate::web::provision::password`]).
pub struct Accounts<'a> {
    pub realm: &'a str,
    pub passwords: &'a PasswordKey,
}

/// Carries out a request against the store: the same code runs in the server (behind the socket)
/// and in the CLI (on the file). Passwords are derived here from a new random salt and returned
/// once; only HA1s and the salt are stored.
///
/// Blocks on the database's fsync; an async caller runs it on a blocking thread.
pub fn execute(
    store: &Store,
    accounts: &Accounts<'_>,
    rng: &dyn SecureRandom,
    request: &Request,
) -> Reply {
    let result = match request {
        Request::AddUser {
            extension,
            display_name,
        } => add_user(store, accounts, rng, extension, display_name),
        Request::ResetPassword { extension } => reset_password(store, accounts, rng, extension),
        Request::ProvisionUser { extension, revoke } => {
            provision_user(store, accounts, rng, extension, *revoke)
        }
        Request::RemoveUser { extension } => remove_user(store, extension),
        Request::RenameUser {
            extension,
            display_name,
        } => rename_user(store, extension, display_name),
        Request::SetOwnerPassword { hash } => store
            .set_owner_password(hash)
            .map(|()| Reply::OwnerPasswordSet)
            .map_err(|error| error.to_string()),
        Request::HasOwnerPassword => store
            .owner_password()
            .map(|hash| Reply::OwnerPassword {
                set: hash.is_some(),
            })
            .map_err(|error| error.to_string()),
        Request::ListUsers => store
            .users()
            .map(|users| Reply::Users {
                users: users.iter().map(UserSummary::from).collect(),
            })
            .map_err(|error| error.to_string()),
        Request::ListBans => store
            .bans(crate::clock::wall_ms())
            .map(|bans| Reply::Bans {
                bans: bans.iter().map(BanSummary::from).collect(),
            })
            .map_err(|error| error.to_string()),
        Request::RemoveBan { scope } => remove_ban(store, scope),
        Request::RenewCertificate => Err(
            "without a running server, `hotline cert renew` obtains the certificate itself"
                .to_owned(),
        ),
        Request::Snapshot => store
            .snapshot(crate::clock::wall_ms())
            .map(|snapshot| Reply::Snapshot {
                records: Records::from(&snapshot),
            })
            .map_err(|error| error.to_string()),
    };
    result.unwrap_or_else(|message| Reply::Failed { message })
}

fn remove_ban(store: &Store, scope: &str) -> Result<Reply, String> {
    let target: Target = scope
        .parse()
        .map_err(|error: ScopeError| error.to_string())?;
    let removed = store
        .remove_bans(|scope| target.matches(scope))
        .map_err(|error| error.to_string())?;
    if removed.is_empty() {
        return Err(format!(
            "no ban covers {target}: `hotline ban list` shows the bans"
        ));
    }
    Ok(Reply::BansLifted {
        scopes: removed.iter().map(ToString::to_string).collect(),
    })
}

fn add_user(
    store: &Store,
    accounts: &Accounts<'_>,
    rng: &dyn SecureRandom,
    extension: &str,
    display_name: &str,
) -> Result<Reply, String> {
    let extension = Extension::parse(extension).map_err(|error| error.to_string())?;
    check_display_name(display_name)?;
    let salt = new_salt(rng).map_err(|_| RANDOM_FAILED)?;
    let password = accounts.passwords.password(&extension, &salt);
    let (token, hash) = link::new_token(rng).map_err(|_| RANDOM_FAILED)?;
    let user = User::new(extension, display_name, accounts.realm, &password);
    match store.add_user_with_salt(&user, &salt, &hash) {
        Ok(()) => Ok(Reply::Created {
            user: UserSummary::from(&user),
            password,
            token,
        }),
        Err(StoreError::UserExists(extension)) => Err(format!(
            "extension {extension} already exists: choose another number, or \
             `hotline user passwd {extension}` for a new password"
        )),
        Err(error) => Err(error.to_string()),
    }
}

fn reset_password(
    store: &Store,
    accounts: &Accounts<'_>,
    rng: &dyn SecureRandom,
    extension: &str,
) -> Result<Reply, String> {
    let extension = Extension::parse(extension).map_err(|error| error.to_string())?;
    let (user, password) = new_password(store, accounts, rng, &extension)?;
    Ok(Reply::PasswordReset {
        user: UserSummary::from(&user),
        password,
    })
}

/// Gives an existing user a new password, derived from a new salt.
fn new_password(
    store: &Store,
    accounts: &Accounts<'_>,
    rng: &dyn SecureRandom,
    extension: &Extension,
) -> Result<(User, String), String> {
    let Some(existing) = store.user(extension).map_err(|error| error.to_string())? else {
        return Err(no_such_user(extension));
    };
    let salt = new_salt(rng).map_err(|_| RANDOM_FAILED)?;
    let password = accounts.passwords.password(extension, &salt);
    let user = User::new(
        extension.clone(),
        &existing.display_name,
        accounts.realm,
        &password,
    );
    match store.replace_user_with_salt(&user, &salt) {
        Ok(()) => Ok((user, password)),
        Err(StoreError::NoSuchUser(extension)) => Err(no_such_user(&extension)),
        Err(error) => Err(error.to_string()),
    }
}

fn rename_user(store: &Store, extension: &str, display_name: &str) -> Result<Reply, String> {
    let extension = Extension::parse(extension).map_err(|error| error.to_string())?;
    check_display_name(display_name)?;
    let Some(mut user) = store.user(&extension).map_err(|error| error.to_string())? else {
        return Err(no_such_user(&extension));
    };
    user.display_name = display_name.to_owned();
    match store.replace_user(&user) {
        Ok(()) => Ok(Reply::Renamed {
            user: UserSummary::from(&user),
        }),
        Err(StoreError::NoSuchUser(extension)) => Err(no_such_user(&extension)),
        Err(error) => Err(error.to_string()),
    }
}

/// A new link (ending the old one), or with `revoke` none. A password from before provisioning
/// cannot go into vendor files, so such a user gets a new one with the link.
fn provision_user(
    store: &Store,
    accounts: &Accounts<'_>,
    rng: &dyn SecureRandom,
    extension: &str,
    revoke: bool,
) -> Result<Reply, String> {
    let extension = Extension::parse(extension).map_err(|error| error.to_string())?;
    let failed = |error: StoreError| match error {
        StoreError::NoSuchUser(extension) => no_such_user(&extension),
        error => error.to_string(),
    };
    if revoke {
        store.set_link(&extension, None).map_err(failed)?;
        return Ok(Reply::LinkRevoked {
            extension: extension.to_string(),
        });
    }
    let Some(mut user) = store.user(&extension).map_err(failed)? else {
        return Err(no_such_user(&extension));
    };
    // The token first: a password changed for a link that then fails would reach no phone.
    let (token, hash) = link::new_token(rng).map_err(|_| RANDOM_FAILED)?;
    let mut password = None;
    if store
        .provisioning(&extension)
        .map_err(failed)?
        .password_salt
        .is_none()
    {
        let (renewed, new) = new_password(store, accounts, rng, &extension)?;
        (user, password) = (renewed, Some(new));
    }
    store.set_link(&extension, Some(&hash)).map_err(failed)?;
    Ok(Reply::Provisioned {
        user: UserSummary::from(&user),
        token,
        password,
    })
}

fn remove_user(store: &Store, extension: &str) -> Result<Reply, String> {
    let extension = Extension::parse(extension).map_err(|error| error.to_string())?;
    match store.remove_user(&extension) {
        Ok(()) => Ok(Reply::Removed {
            extension: extension.to_string(),
        }),
        Err(StoreError::NoSuchUser(extension)) => Err(no_such_user(&extension)),
        Err(error) => Err(error.to_string()),
    }
}

fn no_such_user(extension: &Extension) -> String {
    format!("there is no user with extension {extension}: `hotline user list` shows the users")
}

/// Display names end up in SIP headers, where a control character could split a header.
fn check_display_name(name: &str) -> Result<(), String> {
    if name.chars().count() > MAX_DISPLAY_NAME || name.chars().any(char::is_control) {
        Err(format!(
            "display name {name:?} is not valid: use at most {MAX_DISPLAY_NAME} characters and \
             no control characters, such as \"Alice Desk\""
        ))
    } else {
        Ok(())
    }
}

const RANDOM_FAILED: &str =
    "cannot generate a password or link: the system random number generator failed";

pub fn encode_request(request: &Request) -> Result<String, ControlError> {
    Ok(toml::to_string(request)?)
}

pub fn decode_request(bytes: &[u8]) -> Result<Request, ControlError> {
    decode(bytes, MAX_MESSAGE)
}

/// The reply's text, or when it is longer than `limit` a [`Reply::Failed`] that says so and
/// what to do: the client would not read it all.
pub fn encode_reply(reply: &Reply, limit: usize) -> Result<String, ControlError> {
    let text = toml::to_string(reply)?;
    if text.len() <= limit {
        return Ok(text);
    }
    let message = match reply {
        Reply::Snapshot { .. } => format!(
            "the database is too large to back up through the running server ({} bytes, at \
             most {limit}): stop hotline (`systemctl stop {service}`), run the same `hotline \
             backup` again (it then reads the database itself), and start hotline again",
            text.len(),
            service = crate::setup::board::SERVICE,
        ),
        _ => format!(
            "the reply is {} bytes, longer than the control socket carries ({limit})",
            text.len()
        ),
    };
    Ok(toml::to_string(&Reply::Failed { message })?)
}

/// A reply of at most `limit` bytes (see [`Request::reply_limit`]).
pub fn decode_reply(bytes: &[u8], limit: usize) -> Result<Reply, ControlError> {
    decode(bytes, limit)
}

fn decode<T: DeserializeOwned>(bytes: &[u8], limit: usize) -> Result<T, ControlError> {
    if bytes.len() > limit {
        return Err(ControlError::TooLarge { limit });
    }
    let text = std::str::from_utf8(bytes)
        .map_err(|_| ControlError::Malformed("not UTF-8 text".to_owned()))?;
    toml::from_str(text).map_err(|error| ControlError::Malformed(error.message().to_owned()))
}

/// Blocking client: connects to the socket, writes the request, shuts down the write half, reads
/// the reply (at most [`Request::reply_limit`] bytes) and decodes it.
pub fn call(socket: &Path, request: &Request) -> Result<Reply, ControlError> {
    let io = |source| ControlError::Io {
        socket: socket.to_owned(),
        source,
    };
    let mut stream = match UnixStream::connect(socket) {
        Ok(stream) => stream,
        Err(error)
            if matches!(
                error.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Err(ControlError::NoServer {
                socket: socket.to_owned(),
            });
        }
        Err(error) => return Err(io(error)),
    };
    let timeout = match request {
        Request::RenewCertificate => RENEW_TIMEOUT,
        _ => TIMEOUT,
    };
    stream.set_read_timeout(Some(timeout)).map_err(io)?;
    stream.set_write_timeout(Some(TIMEOUT)).map_err(io)?;
    stream
        .write_all(encode_request(request)?.as_bytes())
        .map_err(io)?;
    stream.shutdown(Shutdown::Write).map_err(io)?;
    let limit = request.reply_limit();
    let mut reply = Vec::new();
    (&mut stream)
        .take(limit as u64 + 1)
        .read_to_end(&mut reply)
        .map_err(io)?;
    Ok(match decode_reply(&reply, limit)? {
        Reply::Failed { message } if message.contains("unknown variant") => Reply::Failed {
            message: format!(
                "the running hotline server is older than this command ({message}): restart \
                 it (`systemctl restart hotline.service`), then run the command again"
            ),
        },
        reply => reply,
    })
}

#[cfg(test)]
mod tests {
    use std::os::unix::net::UnixListener;
    use std::thread;

    use ring::rand::SystemRandom;

    use super::*;
    use crate::core::user::PASSWORD_DIGITS;
    use crate::data_dir::DataDir;

    fn summary(extension: &str, display_name: &str) -> UserSummary {
        UserSummary {
            extension: extension.to_owned(),
            display_name: display_name.to_owned(),
        }
    }

    fn requests() -> Vec<Request> {
        vec![
            Request::AddUser {
                extension: "1000".into(),
                display_name: "Alice \"Desk\" \u{e9}".into(),
            },
            Request::ResetPassword {
                extension: "1000".into(),
            },
            Request::RemoveUser {
                extension: "1000".into(),
            },
            Request::ProvisionUser {
                extension: "1000".into(),
                revoke: true,
            },
            Request::ListUsers,
            Request::ListBans,
            Request::RemoveBan {
                scope: "2001:db8:1:2::/64".into(),
            },
            Request::RenewCertificate,
            Request::Snapshot,
        ]
    }

    fn replies() -> Vec<Reply> {
        vec![
            Reply::Created {
                user: summary("1000", "Alice"),
                password: "0123".into(),
                token: "abc".into(),
            },
            Reply::Provisioned {
                user: summary("1000", "Alice"),
                token: "abc".into(),
                password: None,
            },
            Reply::Provisioned {
                user: summary("1000", "Alice"),
                token: "abc".into(),
                password: Some("0123".into()),
            },
            Reply::LinkRevoked {
                extension: "1000".into(),
            },
            Reply::PasswordReset {
                user: summary("1000", "Alice"),
                password: "4567".into(),
            },
            Reply::Removed {
                extension: "1000".into(),
            },
            Reply::Users { users: vec![] },
            Reply::Users {
                users: vec![summary("1000", "Alice"), summary("2000", "Bob")],
            },
            Reply::Failed {
                message: "line one\nline two".into(),
            },
            Reply::Bans { bans: vec![] },
            Reply::Bans {
                bans: vec![BanSummary {
                    scope: "::1/128".into(),
                    until_ms: 1_800_000_000_000,
                    reason: "5 authentication failures in 600 s".into(),
                }],
            },
            Reply::BansLifted {
                scopes: vec!["::1/128".into(), "::/64".into()],
            },
            Reply::CertificateRenewed {
                message: "Certificate for hotline.test".into(),
            },
            Reply::Snapshot {
                records: Records::default(),
            },
            Reply::Snapshot {
                records: Records {
                    secrets: [("install".to_owned(), "00".repeat(32))].into(),
                    users: vec![crate::backup::records::UserRecord {
                        extension: "1000".into(),
                        display_name: "Alice \"Desk\"".into(),
                        realm: "example.org".into(),
                        ha1_md5: "00".repeat(16),
                        ha1_sha256: "00".repeat(32),
                    }],
                    ..Records::default()
                },
            },
        ]
    }

    #[test]
    fn messages_round_trip() {
        for request in requests() {
            let text = encode_request(&request).unwrap();
            assert_eq!(decode_request(text.as_bytes()).unwrap(), request, "{text}");
        }
        for reply in replies() {
            let text = encode_reply(&reply, MAX_MESSAGE).unwrap();
            assert_eq!(
                decode_reply(text.as_bytes(), MAX_MESSAGE).unwrap(),
                reply,
                "{text}"
            );
        }
        assert_eq!(
            encode_request(&Request::ListUsers).unwrap().trim(),
            "op = \"list_users\""
        );
    }

    #[test]
    fn garbage_is_an_error() {
        let deep = format!("a = {}", "[".repeat(100_000));
        let garbage: [&[u8]; 9] = [
            b"",
            b"\xff\xfe",
            b"op = \"drop_tables\"",
            b"op = \"add_user\"\nextension = \"1000\"",
            b"op = 7",
            b"reply = \"created\"",
            b"op = \"list_users\"\nop = \"list_users\"",
            b"[[[",
            deep.as_bytes(),
        ];
        for bytes in garbage {
            assert!(
                decode_request(bytes).is_err(),
                "{:?}",
                String::from_utf8_lossy(bytes)
            );
            assert!(decode_reply(bytes, MAX_SNAPSHOT).is_err());
        }
        let huge = format!("op = \"list_users\"\n#{}", "x".repeat(MAX_MESSAGE));
        assert!(matches!(
            decode_request(huge.as_bytes()),
            Err(ControlError::TooLarge { limit: MAX_MESSAGE })
        ));
    }

    #[test]
    fn a_reply_too_long_for_the_client_says_what_to_do() {
        let records = Records {
            bans: vec![
                crate::backup::records::BanRecord {
                    scope: "::1/128".into(),
                    until_ms: 1,
                    reason: "x".repeat(100),
                };
                20
            ],
            ..Records::default()
        };
        let snapshot = Reply::Snapshot { records };
        let full = encode_reply(&snapshot, MAX_SNAPSHOT).unwrap();
        assert_eq!(
            decode_reply(full.as_bytes(), MAX_SNAPSHOT).unwrap(),
            snapshot
        );
        // One byte short: the client would stop reading, so the server answers with the remedy.
        let Reply::Failed { message } = decode_reply(
            encode_reply(&snapshot, full.len() - 1).unwrap().as_bytes(),
            MAX_MESSAGE,
        )
        .unwrap() else {
            panic!("not refused");
        };
        assert!(
            message.contains("too large to back up through the running server")
                && message.contains("systemctl stop hotline.service"),
            "{message}"
        );
        let users = Reply::Users {
            users: vec![summary("1000", "Alice")],
        };
        let Reply::Failed { message } =
            decode_reply(encode_reply(&users, 10).unwrap().as_bytes(), MAX_MESSAGE).unwrap()
        else {
            panic!("not refused");
        };
        assert!(
            message.contains("longer than the control socket carries (10)"),
            "{message}"
        );
    }

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&DataDir::new(dir.path()).database()).unwrap();
        (dir, store)
    }

    fn key(dir: &tempfile::TempDir) -> PasswordKey {
        PasswordKey::load_or_create(dir.path(), &SystemRandom::new()).unwrap()
    }

    fn failed(reply: Reply) -> String {
        match reply {
            Reply::Failed { message } => message,
            other => panic!("expected Failed, got {other:?}"),
        }
    }

    #[test]
    fn execute_manages_users() {
        let (dir, store) = store();
        let rng = SystemRandom::new();
        let passwords = key(&dir);
        let accounts = Accounts {
            realm: "example.org",
            passwords: &passwords,
        };
        let run = |request: Request| execute(&store, &accounts, &rng, &request);
        let add = |extension: &str, name: &str| Request::AddUser {
            extension: extension.into(),
            display_name: name.into(),
        };

        let Reply::Created {
            user,
            password,
            token,
        } = run(add("1000", "Alice"))
        else {
            panic!("not created");
        };
        assert_eq!(token.len(), link::TOKEN_LEN);
        assert_eq!(user, summary("1000", "Alice"));
        assert_eq!(password.len(), PASSWORD_DIGITS);
        let stored = store
            .user(&Extension::parse("1000").unwrap())
            .unwrap()
            .unwrap();
        assert_eq!(
            stored,
            User::new(stored.extension.clone(), "Alice", "example.org", &password)
        );

        let message = failed(run(add("1000", "Mallory")));
        assert!(message.contains("1000 already exists"), "{message}");
        assert!(message.contains("hotline user passwd 1000"), "{message}");
        let message = failed(run(add("alice", "Alice")));
        assert!(message.contains("1 to 15 digits"), "{message}");
        let message = failed(run(add("3000", "Eve\r\nVia: evil")));
        assert!(message.contains("control characters"), "{message}");
        failed(run(add("3000", &"x".repeat(MAX_DISPLAY_NAME + 1))));

        run(add("2000", "Bob"));
        assert_eq!(
            run(Request::ListUsers),
            Reply::Users {
                users: vec![summary("1000", "Alice"), summary("2000", "Bob")]
            }
        );

        let Reply::PasswordReset {
            user,
            password: new,
        } = run(Request::ResetPassword {
            extension: "1000".into(),
        })
        else {
            panic!("not reset");
        };
        assert_eq!(user, summary("1000", "Alice"));
        assert_ne!(new, password);
        let stored = store
            .user(&Extension::parse("1000").unwrap())
            .unwrap()
            .unwrap();
        assert_eq!(
            stored,
            User::new(stored.extension.clone(), "Alice", "example.org", &new)
        );
        let message = failed(run(Request::ResetPassword {
            extension: "3000".into(),
        }));
        assert!(message.contains("no user with extension 3000"), "{message}");

        assert_eq!(
            run(Request::RemoveUser {
                extension: "1000".into()
            }),
            Reply::Removed {
                extension: "1000".into()
            }
        );
        let message = failed(run(Request::RemoveUser {
            extension: "1000".into(),
        }));
        assert!(message.contains("hotline user list"), "{message}");
        assert_eq!(
            run(Request::ListUsers),
            Reply::Users {
                users: vec![summary("2000", "Bob")]
            }
        );
    }

    #[test]
    fn execute_lists_and_lifts_bans() {
        let (dir, store) = store();
        let rng = SystemRandom::new();
        let passwords = key(&dir);
        let accounts = Accounts {
            realm: "example.org",
            passwords: &passwords,
        };
        let run = |request: Request| execute(&store, &accounts, &rng, &request);
        let remove = |scope: &str| Request::RemoveBan {
            scope: scope.into(),
        };
        let until_ms = crate::clock::wall_ms() + 3_600_000;
        let ban = |scope: &str| Ban {
            scope: scope.parse().unwrap(),
            until_ms,
            reason: "3 authentication failures in 600 s".into(),
        };
        let bans = [
            ban("2001:db8:1:2::/64"),
            ban("2001:db8:1:2::5"),
            ban("2001:db8::66"),
        ];
        store.save_bans(&bans, 0).unwrap();
        assert_eq!(
            run(Request::ListBans),
            Reply::Bans {
                bans: bans.iter().map(BanSummary::from).collect()
            }
        );

        let message = failed(run(remove("2001:db8::/200")));
        assert!(message.contains("2001:db8:1:2::/64"), "{message}");
        let message = failed(run(remove("2001:db8::67")));
        assert!(message.contains("no ban covers 2001:db8::67"), "{message}");
        assert!(message.contains("hotline ban list"), "{message}");
        // An exact scope lifts that ban alone, an address every ban that covers it.
        assert_eq!(
            run(remove("2001:db8:1:2::5/128")),
            Reply::BansLifted {
                scopes: vec!["2001:db8:1:2::5/128".into()]
            }
        );
        assert_eq!(
            run(remove("2001:db8:1:2::7")),
            Reply::BansLifted {
                scopes: vec!["2001:db8:1:2::/64".into()]
            }
        );
        assert_eq!(
            run(Request::ListBans),
            Reply::Bans {
                bans: vec![BanSummary::from(&bans[2])]
            }
        );
    }

    #[test]
    fn call_talks_to_a_server() {
        let (dir, store) = store();
        let socket = DataDir::new(dir.path()).control_socket();
        let listener = UnixListener::bind(&socket).unwrap();
        let passwords = key(&dir);
        let server = thread::spawn(move || {
            let rng = SystemRandom::new();
            let accounts = Accounts {
                realm: "example.org",
                passwords: &passwords,
            };
            for _ in 0..2 {
                let (mut stream, _) = listener.accept().unwrap();
                let mut request = Vec::new();
                stream.read_to_end(&mut request).unwrap();
                let request = decode_request(&request).unwrap();
                let reply = execute(&store, &accounts, &rng, &request);
                stream
                    .write_all(encode_reply(&reply, MAX_MESSAGE).unwrap().as_bytes())
                    .unwrap();
            }
        });

        let reply = call(
            &socket,
            &Request::AddUser {
                extension: "1000".into(),
                display_name: "Alice".into(),
            },
        )
        .unwrap();
        assert!(matches!(reply, Reply::Created { .. }), "{reply:?}");
        assert_eq!(
            call(&socket, &Request::ListUsers).unwrap(),
            Reply::Users {
                users: vec![summary("1000", "Alice")]
            }
        );
        server.join().unwrap();
    }

    #[test]
    fn a_server_older_than_the_command_is_named_with_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let socket = DataDir::new(dir.path()).control_socket();
        let listener = UnixListener::bind(&socket).unwrap();
        let server = thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut request = String::new();
            stream.read_to_string(&mut request).unwrap();
            // What an older server makes of a request it has no variant for.
            let request = request.replace("list_users", "a_later_request");
            let message = decode_request(request.as_bytes()).unwrap_err().to_string();
            let reply = encode_reply(&Reply::Failed { message }, MAX_MESSAGE).unwrap();
            stream.write_all(reply.as_bytes()).unwrap();
        });
        let reply = call(&socket, &Request::ListUsers).unwrap();
        let Reply::Failed { message } = reply else {
            panic!("{reply:?}")
        };
        assert!(
            message.contains("older than this command")
                && message.contains("systemctl restart hotline.service"),
            "{message}"
        );
        server.join().unwrap();
    }

    #[test]
    fn call_without_a_server() {
        let dir = tempfile::tempdir().unwrap();
        let socket = DataDir::new(dir.path()).control_socket();
        assert!(matches!(
            call(&socket, &Request::ListUsers),
            Err(ControlError::NoServer { .. })
        ));

        // A socket left behind by a server that has exited refuses connections.
        drop(UnixListener::bind(&socket).unwrap());
        assert!(socket.exists());
        assert!(matches!(
            call(&socket, &Request::ListUsers),
            Err(ControlError::NoServer { .. })
        ));
    }

    #[test]
    fn call_refuses_an_oversized_reply() {
        let dir = tempfile::tempdir().unwrap();
        let socket = DataDir::new(dir.path()).control_socket();
        let listener = UnixListener::bind(&socket).unwrap();
        let server = thread::spawn(move || {
            for length in [2 * MAX_MESSAGE, MAX_SNAPSHOT + 1] {
                let (mut stream, _) = listener.accept().unwrap();
                stream.read_to_end(&mut Vec::new()).unwrap();
                // The client stops reading after its limit + 1 bytes and closes the connection.
                let _ = stream.write_all(&vec![b'#'; length]);
            }
        });
        assert!(matches!(
            call(&socket, &Request::ListUsers),
            Err(ControlError::TooLarge { limit: MAX_MESSAGE })
        ));
        // A snapshot may be longer, within its own bound.
        assert!(matches!(
            call(&socket, &Request::Snapshot),
            Err(ControlError::TooLarge {
                limit: MAX_SNAPSHOT
            })
        ));
        server.join().unwrap();
    }
}
