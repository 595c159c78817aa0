//! The owner's pages (DESIGN.md, "The HTTPS side"): one login with the owner's argon2id
//! password, then pages that read the core through [`CoreHandle`] and change it the way the
//! control socket does (the store first, then the core).
//!
//! Every page but the login and the style sheet needs a session; every form carries the
//! session's CSRF token (the login form a token of its own, in a short-lived cookie); wrong
//! passwords count toward a ban of their source, like SIP's; one password is verified at a time.

mod chart;
mod html;
mod pages;
pub mod password;
pub mod sessions;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use hyper::Method;
use tokio::sync::Semaphore;
use tracing::{info, warn};

use super::http::{Handler, Reply, Request, Response};
use crate::certificate::CurrentCertificate;
use crate::net::changes::UserKeys;
use crate::net::inbox::CoreHandle;
use crate::store::Store;
use html::field;
use sessions::{COOKIE, Session, Sessions, same_secret};

/// The cookie that carries the login form's CSRF token.
const LOGIN_COOKIE: &str = "hotline_login";

pub struct OwnerPages {
    core: CoreHandle,
    store: Arc<Store>,
    /// The realm and password key that user changes need.
    users: Arc<UserKeys>,
    certificate: Arc<CurrentCertificate>,
    /// `https://<domain>[:port]`, which provisioning links extend.
    link_base: String,
    sessions: Mutex<Sessions>,
    /// One argon2 verification at a time: each takes 16 MiB and a core for a while.
    verifying: Semaphore,
    started: Instant,
}

impl OwnerPages {
    pub fn new(
        core: CoreHandle,
        store: Arc<Store>,
        users: Arc<UserKeys>,
        certificate: Arc<CurrentCertificate>,
        link_base: String,
    ) -> OwnerPages {
        OwnerPages {
            core,
            store,
            users,
            certificate,
            link_base,
            sessions: Mutex::default(),
            verifying: Semaphore::new(1),
            started: Instant::now(),
        }
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, Sessions> {
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn owner_password(&self) -> Option<String> {
        match self.store.owner_password() {
            Ok(hash) => hash,
            Err(error) => {
                warn!(%error, "cannot read the owner's password");
                None
            }
        }
    }

    async fn serve(&self, request: Request) -> Response {
        let path = request.path().to_owned();
        match (&request.method, path.as_str()) {
            (&Method::GET, "/style.css") => Response::new(200, "text/css", html::STYLE),
            (&Method::GET, "/login") => login_form(&request, None, 200),
            (&Method::POST, "/login") => self.login(&request).await,
            _ => {
                let Some((token, session)) = self.session(&request) else {
                    return Response::see_other("/login");
                };
                if request.method == Method::POST {
                    let csrf = field(&request.body, "csrf").unwrap_or_default();
                    if !same_secret(&csrf, &session.csrf) {
                        return Response::text(403, "missing or wrong CSRF token\n");
                    }
                }
                self.page(&request, &path, &token, &session).await
            }
        }
    }

    /// The session of the request's cookie, if it is live under the current password.
    fn session(&self, request: &Request) -> Option<(String, Session)> {
        let token = request.cookie(COOKIE)?.to_owned();
        let password = self.owner_password()?;
        let session = self.sessions().touch(&token, &password, Instant::now())?;
        Some((token, session))
    }

    async fn login(&self, request: &Request) -> Response {
        let csrf = field(&request.body, "csrf").unwrap_or_default();
        let expected = request.cookie(LOGIN_COOKIE).unwrap_or_default();
        if expected.is_empty() || !same_secret(&csrf, expected) {
            return Response::text(403, "missing or wrong CSRF token: reload the login page\n");
        }
        let Some(stored) = self.owner_password() else {
            let message = "No owner password is set: run `hotline owner passwd` on the appliance.";
            return login_form(request, Some(message), 403);
        };
        let Ok(_permit) = self.verifying.try_acquire() else {
            return Response::text(429, "another login is being checked: try again\n");
        };
        let attempt = field(&request.body, "password").unwrap_or_default();
        let hash = stored.clone();
        let verified = tokio::task::spawn_blocking(move || password::verify(&hash, &attempt));
        if !verified.await.unwrap_or(false) {
            let remote = request.remote;
            self.core
                .ask(move |core, now| core.web_authentication_failed(remote, "owner password", now))
                .await;
            return login_form(request, Some("Wrong password."), 403);
        }
        let Some(token) = self.sessions().open(&stored, Instant::now()) else {
            return Response::text(500, "the system random number generator failed\n");
        };
        info!(source = %request.remote, "owner logged in");
        Response::see_other("/")
            .with("set-cookie", session_cookie(&token))
            .with(
                "set-cookie",
                format!("{LOGIN_COOKIE}=; {COOKIE_ATTRIBUTES}; Max-Age=0"),
            )
    }

    async fn page(
        &self,
        request: &Request,
        path: &str,
        token: &str,
        session: &Session,
    ) -> Response {
        let csrf = session.csrf.as_str();
        match (&request.method, path) {
            (&Method::GET, "/") => pages::overview(self, csrf).await,
            (&Method::GET, "/phones") => pages::phones(self, csrf).await,
            (&Method::GET, "/calls") => pages::calls(self, csrf).await,
            (&Method::GET, "/extensions") => pages::extensions(self, csrf, None).await,
            (&Method::POST, "/extensions") => pages::change_extension(self, csrf, request).await,
            (&Method::GET, "/security") => pages::security(self, csrf).await,
            (&Method::POST, "/security") => pages::lift_ban(self, csrf, request).await,
            (&Method::POST, "/logout") => {
                self.sessions().close(token);
                info!(source = %request.remote, "owner logged out");
                Response::see_other("/login").with(
                    "set-cookie",
                    format!("{COOKIE}=; {COOKIE_ATTRIBUTES}; Max-Age=0"),
                )
            }
            _ => Response::not_found(),
        }
    }
}

impl Handler for OwnerPages {
    fn handle(&self, request: Request) -> Reply<'_> {
        Box::pin(self.serve(request))
    }
}

const COOKIE_ATTRIBUTES: &str = "Path=/; Secure; HttpOnly; SameSite=Strict";

fn session_cookie(token: &str) -> String {
    format!("{COOKIE}={token}; {COOKIE_ATTRIBUTES}")
}

/// The login page, with the CSRF token of the browser's login cookie in its form, or a new one
/// (a browser may load the page more than once, say after a redirect of its favicon request).
fn login_form(request: &Request, message: Option<&str>, status: u16) -> Response {
    let kept = request
        .cookie(LOGIN_COOKIE)
        .filter(|t| t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(str::to_owned);
    let Some(csrf) = kept.or_else(sessions::token) else {
        return Response::text(500, "the system random number generator failed\n");
    };
    let mut body = String::new();
    if let Some(message) = message {
        body.push_str(&format!("<p class=\"error\">{}</p>", html::escape(message)));
    }
    let fields = "<label>Owner password <input type=\"password\" name=\"password\" \
                  autocomplete=\"current-password\" required autofocus></label>";
    body.push_str(&html::form("/login", &csrf, fields, "Log in"));
    Response::html(status, html::page("Log in", None, &body)).with(
        "set-cookie",
        format!("{LOGIN_COOKIE}={csrf}; {COOKIE_ATTRIBUTES}; Max-Age=600"),
    )
}
