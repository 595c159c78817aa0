//! The pages behind the login: Overview, Phones, Extensions and Security. Each reads the core
//! once through [`CoreHandle::ask`](crate::net::inbox::CoreHandle::ask); changes go through the same
//! requests as the control socket, so the store and the core learn of them as from the CLI.

use std::fmt::Write as _;

use super::html::{self, escape, field, form};
use super::{OwnerPages, chart};
use crate::control::{Reply, Request as Control, UserSummary};
use crate::core::bans::Utc;
use crate::net::changes::carry_out;
use crate::web::http::{Request, Response};
use crate::web::provision::{link, qr};
use crate::web::status::CertificateInfo;

/// The answer when the core task is gone (the server is stopping).
fn stopping() -> Response {
    Response::text(503, "the server is stopping\n")
}

fn ok(title: &str, csrf: &str, body: &str) -> Response {
    Response::html(200, html::page(title, Some(csrf), body))
}

pub async fn overview(pages: &OwnerPages, csrf: &str) -> Response {
    let asked = pages.core.ask(|core, now| {
        let history = core.history();
        let today = history
            .last_day(now.wall_ms)
            .iter()
            .rev()
            .take(minutes_today(now.wall_ms))
            .map(|m| m.calls)
            .sum::<u32>();
        (
            core.counts(now.wall_ms),
            today,
            history.last_day(now.wall_ms),
        )
    });
    let Some((counts, calls_today, day)) = asked.await else {
        return stopping();
    };
    let mut body = String::from("<div class=\"cards\">");
    for (value, label) in [
        (counts.phones, "phones online"),
        (counts.extensions, "extensions"),
        (counts.calls, "calls now"),
        (calls_today as usize, "calls today (UTC)"),
        (counts.bans, "bans in force"),
    ] {
        let _ = write!(body, "<div class=\"card\"><b>{value}</b>{label}</div>");
    }
    body.push_str("</div><h2>The last 24 hours</h2>");
    body.push_str("<div class=\"chart\">");
    body.push_str(&chart::day(&day));
    body.push_str("</div><h2>This appliance</h2><table class=\"facts\">");
    let certificate = pages.certificate.get();
    let expiry = certificate
        .cert
        .first()
        .and_then(|der| CertificateInfo::parse(der))
        .map_or("unknown".to_owned(), |info| {
            format!("{} ({})", Utc(info.not_after_ms), info.issuer)
        });
    let uptime = pages.started.elapsed().as_secs();
    let rows = [
        ("Domain", pages.users.realm.clone()),
        ("Certificate valid until", expiry),
        (
            "Up for",
            format!(
                "{}d {}h {}m",
                uptime / 86_400,
                uptime / 3600 % 24,
                uptime / 60 % 60
            ),
        ),
        ("Memory (RSS)", resident_memory()),
        ("Version", env!("CARGO_PKG_VERSION").to_owned()),
    ];
    for (name, value) in rows {
        let _ = write!(body, "<tr><th>{name}</th><td>{}</td></tr>", escape(&value));
    }
    body.push_str("</table>");
    ok("Overview", csrf, &body)
}

/// Minutes since midnight UTC, including the current one.
fn minutes_today(now_ms: u64) -> usize {
    (now_ms / 60_000 % (24 * 60)) as usize + 1
}

/// The process's resident memory, from `/proc/self/status`.
fn resident_memory() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let line = status.lines().find_map(|l| l.strip_prefix("VmRSS:"));
    line.map_or("unknown".to_owned(), |kb| kb.trim().to_owned())
}

pub async fn phones(pages: &OwnerPages, csrf: &str) -> Response {
    let Some((phones, now)) = pages
        .core
        .ask(|core, now| (core.phones(now.wall_ms), now.wall_ms))
        .await
    else {
        return stopping();
    };
    let mut body = String::new();
    if phones.is_empty() {
        body.push_str("<p>No phone is registered.</p>");
    } else {
        body.push_str(
            "<table><tr><th>Extension</th><th>Name</th><th>User-Agent</th><th>Transport</th>\
             <th>Address</th><th>Since</th><th>Expires in</th></tr>",
        );
        for phone in &phones {
            let binding = &phone.binding;
            let _ = write!(
                body,
                "<tr><td>{}</td><td>{}</td><td class=\"long\">{}</td><td>{}</td><td>{}</td>\
                 <td>{}</td><td>{} s</td></tr>",
                escape(phone.extension.as_str()),
                escape(&phone.display_name),
                escape(&binding.user_agent),
                binding.flow.transport,
                escape(&binding.flow.remote.to_string()),
                match binding.since_ms {
                    0 => "before the restart".to_owned(),
                    since => Utc(since).to_string(),
                },
                binding.remaining_secs(now),
            );
        }
        body.push_str("</table>");
    }
    ok("Phones", csrf, &body)
}

pub async fn calls(pages: &OwnerPages, csrf: &str) -> Response {
    let Some(calls) = pages.core.ask(|core, _| core.history().calls()).await else {
        return stopping();
    };
    let mut body = String::new();
    if calls.is_empty() {
        body.push_str("<p>No call since hotline started.</p>");
    } else {
        body.push_str(
            "<table><tr><th>From</th><th>To</th><th>Start</th><th>Duration</th>\
             <th>Outcome</th></tr>",
        );
        for call in &calls {
            let duration = match (call.outcome, call.ended_ms) {
                (Some((200..=299, answered)), Some(ended)) => {
                    let secs = ended.saturating_sub(answered) / 1000;
                    format!("{}:{:02}", secs / 60, secs % 60)
                }
                (Some((200..=299, _)), None) => "in progress".to_owned(),
                _ => String::new(),
            };
            let outcome = match call.outcome {
                None => "ringing".to_owned(),
                Some((status, _)) => format!("{status} {}", outcome(status)),
            };
            let _ = write!(
                body,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{duration}</td><td>{}</td></tr>",
                escape(&call.from),
                escape(&call.to),
                Utc(call.start_ms),
                escape(&outcome),
            );
        }
        body.push_str("</table>");
    }
    ok("Calls", csrf, &body)
}

/// What a final status means for a call.
fn outcome(status: u16) -> &'static str {
    match status {
        200..=299 => "answered",
        404 => "no such extension",
        408 | 480 => "not reachable",
        486 | 600 => "busy",
        487 => "cancelled",
        488 => "SDP or SRTP required",
        603 => "declined",
        _ => "failed",
    }
}

pub async fn extensions(pages: &OwnerPages, csrf: &str, notice: Option<String>) -> Response {
    let Some(users) = pages.core.ask(|core, _| core.extensions()).await else {
        return stopping();
    };
    let store = pages.store.clone();
    let linked = match tokio::task::spawn_blocking(move || store.links()).await {
        Ok(Ok(links)) => links.into_iter().map(|(e, _)| e).collect::<Vec<_>>(),
        Ok(Err(error)) => {
            let message = format!("cannot read the provisioning links: {error}\n");
            return Response::text(500, &message);
        }
        Err(_) => return stopping(),
    };
    let mut body = notice.unwrap_or_default();
    body.push_str("<h2>Add an extension</h2>");
    let fields = "<input type=\"hidden\" name=\"action\" value=\"add\">\
                  <input name=\"extension\" placeholder=\"1000\" inputmode=\"numeric\" \
                  aria-label=\"Extension\" required>\
                  <input name=\"name\" placeholder=\"Name\" aria-label=\"Name\">";
    body.push_str(&form("/extensions", csrf, fields, "Add"));
    body.push_str(
        "<h2>Extensions</h2><table class=\"stack\"><tr><th>Extension</th><th>Name</th>\
         <th>Provisioning link</th><th></th></tr>",
    );
    for (extension, name) in &users {
        let has_link = linked.contains(extension);
        let extension = escape(extension.as_str());
        let hidden = |action: &str| {
            format!(
                "<input type=\"hidden\" name=\"action\" value=\"{action}\">\
                 <input type=\"hidden\" name=\"extension\" value=\"{extension}\">"
            )
        };
        let rename = format!(
            "{}<input name=\"name\" value=\"{}\" aria-label=\"Name\">",
            hidden("rename"),
            escape(name)
        );
        let link = match has_link {
            true => format!(
                "active {}{}",
                form("/extensions", csrf, &hidden("link"), "New link"),
                form("/extensions", csrf, &hidden("revoke"), "Revoke")
            ),
            false => format!(
                "none {}",
                form("/extensions", csrf, &hidden("link"), "Make a link")
            ),
        };
        let _ = write!(
            body,
            "<tr><td>{extension}</td><td>{}</td><td>{link}</td><td>{}{}</td></tr>",
            form("/extensions", csrf, &rename, "Rename"),
            form("/extensions", csrf, &hidden("password"), "New password"),
            form("/extensions", csrf, &hidden("remove"), "Remove"),
        );
    }
    body.push_str("</table>");
    ok("Extensions", csrf, &body)
}

/// Add, rename, new password, new link, revoke, remove: the form's `action`. A new password
/// and a new link are shown this once: the store keeps only their hashes.
pub async fn change_extension(pages: &OwnerPages, csrf: &str, request: &Request) -> Response {
    let value = |name| field(&request.body, name).unwrap_or_default();
    let (extension, name) = (value("extension"), value("name"));
    let control = match value("action").as_str() {
        "add" => Control::AddUser {
            extension,
            display_name: name,
        },
        "rename" => Control::RenameUser {
            extension,
            display_name: name,
        },
        "password" => Control::ResetPassword { extension },
        "link" => Control::ProvisionUser {
            extension,
            revoke: false,
        },
        "revoke" => Control::ProvisionUser {
            extension,
            revoke: true,
        },
        "remove" => Control::RemoveUser { extension },
        _ => return Response::text(400, "unknown action\n"),
    };
    let reply = carry_out(
        control,
        pages.store.clone(),
        pages.users.clone(),
        pages.core.events(),
    )
    .await;
    let notice = match reply {
        Reply::Created {
            user,
            password,
            token,
        } => password_notice(&user, &password) + &link_notice(pages, &user, &token),
        Reply::PasswordReset { user, password } => password_notice(&user, &password),
        Reply::Provisioned {
            user,
            token,
            password,
        } => {
            let password = password.map(|p| password_notice(&user, &p));
            password.unwrap_or_default() + &link_notice(pages, &user, &token)
        }
        Reply::LinkRevoked { extension } => format!(
            "<p class=\"notice\">The provisioning link of extension {} is ended.</p>",
            escape(&extension)
        ),
        Reply::Renamed { user } => format!(
            "<p class=\"notice\">Extension {} is now named {}.</p>",
            escape(&user.extension),
            escape(&user.display_name)
        ),
        Reply::Removed { extension } => format!(
            "<p class=\"notice\">Extension {} is removed.</p>",
            escape(&extension)
        ),
        Reply::Failed { message } => format!("<p class=\"error\">{}</p>", escape(&message)),
        _ => String::new(),
    };
    extensions(pages, csrf, Some(notice)).await
}

fn password_notice(user: &UserSummary, password: &str) -> String {
    format!(
        "<div class=\"notice\"><p>The password of extension {} ({}) is shown this once:</p>\
         <p class=\"secret\">{}</p></div>",
        escape(&user.extension),
        escape(&user.display_name),
        escape(password)
    )
}

/// The new link as text and as a QR code, shown this once; any link before it is ended.
fn link_notice(pages: &OwnerPages, user: &UserSummary, token: &str) -> String {
    let url = format!("{}{}{token}", pages.link_base, link::PATH_PREFIX);
    let qr = qr::svg(&url).unwrap_or_default();
    format!(
        "<div class=\"notice\"><p>The provisioning link of extension {} ({}) is shown this \
         once (a secret, like a password; any earlier link is ended). A phone that scans or \
         fetches it sets itself up:</p><p class=\"secret\">{}</p><div class=\"qr\">{qr}</div></div>",
        escape(&user.extension),
        escape(&user.display_name),
        escape(&url)
    )
}

pub async fn security(pages: &OwnerPages, csrf: &str) -> Response {
    let asked = pages
        .core
        .ask(|core, now| (core.bans_in_force(now.wall_ms), core.history().events()));
    let Some((bans, events)) = asked.await else {
        return stopping();
    };
    let mut body = String::from("<h2>Bans</h2>");
    if bans.is_empty() {
        body.push_str("<p>No source is banned.</p>");
    } else {
        body.push_str(
            "<table class=\"stack\"><tr><th>Scope</th><th>Until</th><th>Reason</th><th></th></tr>",
        );
        for ban in &bans {
            let scope = escape(&ban.scope.to_string());
            let lift = format!("<input type=\"hidden\" name=\"scope\" value=\"{scope}\">");
            let _ = write!(
                body,
                "<tr><td>{scope}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                Utc(ban.until_ms),
                escape(&ban.reason),
                form("/security", csrf, &lift, "Lift"),
            );
        }
        body.push_str("</table>");
    }
    body.push_str("<h2>Recent events</h2>");
    if events.is_empty() {
        body.push_str("<p>No security event since hotline started.</p>");
    } else {
        body.push_str(
            "<table class=\"stack\"><tr><th>Time</th><th>Address</th><th>Event</th></tr>",
        );
        for event in &events {
            let _ = write!(
                body,
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                Utc(event.at_ms),
                event.address,
                event.name
            );
        }
        body.push_str("</table>");
    }
    ok("Security", csrf, &body)
}

pub async fn lift_ban(pages: &OwnerPages, csrf: &str, request: &Request) -> Response {
    let scope = field(&request.body, "scope").unwrap_or_default();
    let control = Control::RemoveBan { scope };
    let (store, users) = (pages.store.clone(), pages.users.clone());
    if let Reply::Failed { message } = carry_out(control, store, users, pages.core.events()).await {
        let body = format!("<p class=\"error\">{}</p>", escape(&message));
        return Response::html(400, html::page("Security", Some(csrf), &body));
    }
    Response::see_other("/security")
}
