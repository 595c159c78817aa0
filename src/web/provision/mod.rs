//! Phones that set themselves up: one secret link per extension, served over HTTPS, returns the
//! phone's configuration in its vendor's format, and the phone book of the network.
//!
//! Under `/p/<token>` ([`link`]):
//!
//! - nothing more: the format of the client, known by its `User-Agent`: Yealink, Grandstream,
//!   the plain settings card for a browser, else Linphone's XML;
//! - `linphone.xml` ([`linphone`]), any `*.cfg` (Yealink asks for `y0000000000xx.cfg` and
//!   `<mac>.cfg`, [`yealink`]), `cfg*.xml` (Grandstream asks for `cfg<mac>.xml`,
//!   [`grandstream`]), `settings.txt` (the card);
//! - `directory/{yealink,grandstream,cisco,snom}.xml`, `directory/contacts.vcf` and
//!   Grandstream's `phonebook.xml` ([`directory`]);
//! - `certificate.pem`: the server's certificate while it is self-signed.
//!
//! A link that is not one (wrong, revoked, malformed) gets the same 404 as a missing page and is
//! reported as an authentication failure, whatever the extension; nothing is listed.

pub mod account;
pub mod directory;
pub mod grandstream;
pub mod link;
pub mod linphone;
pub mod password;
pub mod qr;
mod xml;
pub mod yealink;

use std::sync::Arc;

use ring::hmac;
use tracing::warn;

use crate::config::Config;
use crate::net::inbox::CoreHandle;
use crate::store::Store;
use crate::web::http::{Handler, Reply, Request, Response};
use account::PhoneAccount;
use directory::Directory;
use password::PasswordKey;

/// What the provisioning side answered, and whether the request presented a link that is not
/// one: an authentication failure for the ban table.
#[derive(Debug)]
pub struct Answer {
    pub response: Response,
    pub failed_link: bool,
}

/// Serves `/p/…` from the store: every answer reflects the users as they are now.
pub struct Provisioning {
    config: Arc<Config>,
    store: Arc<Store>,
    passwords: PasswordKey,
    /// Keys the constant-time comparison of link hashes.
    compare: hmac::Key,
}

impl Provisioning {
    pub fn new(config: Arc<Config>, store: Arc<Store>, passwords: PasswordKey) -> Provisioning {
        let rng = ring::rand::SystemRandom::new();
        let compare = hmac::Key::generate(hmac::HMAC_SHA256, &rng)
            .unwrap_or_else(|_| hmac::Key::new(hmac::HMAC_SHA256, &[0; 32]));
        Provisioning {
            config,
            store,
            passwords,
            compare,
        }
    }

    /// Answers a GET or HEAD whose path starts with [`link::PATH_PREFIX`]. Reads the store:
    /// blocks on its file.
    pub fn answer(&self, request: &Request) -> Answer {
        let rest = request
            .path()
            .strip_prefix(link::PATH_PREFIX)
            .unwrap_or_default();
        let (token, file) = rest.split_once('/').unwrap_or((rest, ""));
        let well_formed = token.len() == link::TOKEN_LEN
            && token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        let account = match well_formed {
            true => self.account(token),
            false => None,
        };
        let Some(account) = account else {
            return Answer {
                response: Response::not_found(),
                failed_link: true,
            };
        };
        let response = self
            .file(&account, file, Client::of(request))
            .unwrap_or_else(Response::not_found);
        Answer {
            response,
            failed_link: false,
        }
    }

    /// The account of the extension `token` is the link of, if any.
    fn account(&self, token: &str) -> Option<PhoneAccount> {
        let read = || -> Result<Option<PhoneAccount>, crate::store::StoreError> {
            let links = self.store.links()?;
            let Some(extension) = link::find(&self.compare, &links, token) else {
                return Ok(None);
            };
            let Some(user) = self.store.user(&extension)? else {
                return Ok(None);
            };
            let password = self
                .store
                .provisioning(&extension)?
                .password_salt
                .map(|salt| self.passwords.password(&extension, &salt));
            let mut account = PhoneAccount::new(
                &self.config,
                &user,
                password,
                link::url(&self.config, token),
            );
            account.self_signed = self_signed_certificate(&self.config);
            Ok(Some(account))
        };
        read().unwrap_or_else(|error| {
            warn!(%error, "cannot read the provisioning link's extension");
            None
        })
    }

    fn file(&self, account: &PhoneAccount, file: &str, client: Client) -> Option<Response> {
        let document = |content_type, body: String| Response::new(200, content_type, body);
        const XML: &str = "text/xml; charset=utf-8";
        const TEXT: &str = "text/plain; charset=utf-8";
        if let Some(name) = file.strip_prefix("directory/") {
            return self.directory(Directory::from_file(name)?, account);
        }
        Some(match (file, client) {
            ("", Client::Yealink) => document(TEXT, yealink::config(account)?),
            ("", Client::Grandstream) => document(XML, grandstream::config(account)?),
            ("", Client::Browser) | ("settings.txt", _) => document(TEXT, account::card(account)),
            ("", Client::Linphone) => document(XML, linphone::config(account)),
            ("linphone.xml", _) => document(XML, linphone::config(account)),
            ("phonebook.xml", _) => return self.directory(Directory::Grandstream, account),
            ("certificate.pem", _) => {
                document("application/x-pem-file", account.self_signed.clone()?)
            }
            (name, _) if name.ends_with(".cfg") && !name.contains('/') => {
                document(TEXT, yealink::config(account)?)
            }
            (name, _)
                if name.starts_with("cfg") && name.ends_with(".xml") && !name.contains('/') =>
            {
                document(XML, grandstream::config(account)?)
            }
            _ => return None,
        })
    }

    fn directory(&self, directory: Directory, account: &PhoneAccount) -> Option<Response> {
        let users = self
            .store
            .users()
            .map_err(|error| warn!(%error, "cannot read the users for the directory"))
            .ok()?;
        let body = directory.render(&users, &account.server);
        Some(Response::new(200, directory.content_type(), body))
    }
}

/// Who fetches the bare link, which decides the format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Client {
    Yealink,
    Grandstream,
    /// A person with a browser: the settings card.
    Browser,
    /// Everything else: the Linphone apps and liblinphone, which may not say who they are
    /// (linphonec sends `User-Agent: Unknown`).
    Linphone,
}

impl Client {
    fn of(request: &Request) -> Client {
        let agent = request
            .header("user-agent")
            .unwrap_or_default()
            .to_ascii_lowercase();
        let accept = request.header("accept").unwrap_or_default();
        if agent.contains("yealink") {
            Client::Yealink
        } else if agent.contains("grandstream") {
            Client::Grandstream
        } else if agent.contains("mozilla") || accept.contains("text/html") {
            Client::Browser
        } else {
            Client::Linphone
        }
    }
}

/// The handler of [`link::PATH_PREFIX`] on the HTTPS listener: answers from the store on a
/// blocking thread, and reports a link that is not one to the core's ban table.
pub struct Links {
    pub provisioning: Arc<Provisioning>,
    pub core: CoreHandle,
}

impl Handler for Links {
    fn handle(&self, request: Request) -> Reply<'_> {
        Box::pin(async move {
            // Nothing under /p/ takes a body: other methods learn nothing, not even whether
            // the link is one.
            if request.method != hyper::Method::GET && request.method != hyper::Method::HEAD {
                return Response::not_found();
            }
            let remote = request.remote;
            let provisioning = self.provisioning.clone();
            let answer = tokio::task::spawn_blocking(move || provisioning.answer(&request)).await;
            let Ok(answer) = answer else {
                return Response::not_found();
            };
            if answer.failed_link {
                let failed = move |core: &mut crate::core::Core, now| {
                    core.web_authentication_failed(remote, "provisioning link", now)
                };
                self.core.ask(failed).await;
            }
            answer.response
        })
    }
}

/// The PEM of the certificate served, when it is hotline's own self-signed one.
pub fn self_signed_certificate(config: &Config) -> Option<String> {
    let served = crate::web::status::served_certificate(config);
    if served != config.data_dir.join("tls").join("cert.pem") {
        return None;
    }
    std::fs::read_to_string(served).ok()
}

#[cfg(test)]
mod tests;
