//! The HTTPS listener with `[web]` enabled and ACME off, and the owner's pages on it: the login,
//! sessions, CSRF tokens, bans of wrong passwords, and escaping, all through real HTTPS.

mod common;

use common::{Client, Server};
use hotline::core::auth::Algorithm;

use common::netns::in_network_namespace;
use common::web::{OWNER_PASSWORD, Owner, WEB_TOML, exchange, log_in, request, set_cookie};

/// A 40-digit SIP password that no user has (theirs are random).
const WRONG: &str = "1234567890123456789012345678901234567890";

fn server_with_owner(extra_toml: &str) -> Server {
    let server = Server::start(&format!("{WEB_TOML}{extra_toml}"));
    let output = server.owner_passwd(OWNER_PASSWORD);
    assert!(output.status.success(), "{output:?}");
    server
}

#[test]
fn https_runs_without_acme_with_security_headers() {
    let server = Server::start(WEB_TOML);
    let answer = request(&server, "GET", "/login", &[], "");
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.header("x-frame-options"), Some("DENY"));
    assert!(answer.header("strict-transport-security").is_some());
    let policy = answer.header("content-security-policy").unwrap();
    assert!(policy.contains("default-src 'none'"), "{policy}");
}

#[test]
fn oversized_bodies_and_heads_are_refused() {
    let server = Server::start(WEB_TOML);
    let body = "a".repeat(64 * 1024);
    let answer = request(&server, "POST", "/login", &[], &body);
    assert_eq!(answer.status, 413, "{answer:?}");
    let mut head = b"GET / HTTP/1.1\r\nX: ".to_vec();
    head.resize(32 * 1024, b'a');
    let answer = exchange(&server, &head);
    assert!(answer.starts_with("HTTP/1.1 431 "), "{answer}");
}

#[test]
fn every_page_without_a_session_redirects_to_the_login() {
    let server = server_with_owner("");
    let stale = "Cookie: hotline_session=0123456789abcdef";
    for path in ["/", "/phones", "/extensions", "/security", "/nowhere"] {
        for headers in [&[][..], &[stale][..]] {
            let answer = request(&server, "GET", path, headers, "");
            assert_eq!(answer.status, 303, "{path}: {answer:?}");
            assert_eq!(answer.header("location"), Some("/login"), "{path}");
        }
    }
    let answer = request(
        &server,
        "POST",
        "/extensions",
        &[],
        "action=add&extension=1",
    );
    assert_eq!(
        (answer.status, answer.header("location")),
        (303, Some("/login"))
    );
    let output = server.hotline(&["user", "list"]);
    assert!(String::from_utf8_lossy(&output.stdout).contains("No extensions"));
}

#[test]
fn login_refuses_a_wrong_password_and_sets_a_strict_cookie() {
    let server = server_with_owner("");
    let answer = log_in(&server, "not the password");
    assert_eq!(answer.status, 403, "{answer:?}");
    assert!(answer.body.contains("Wrong password."), "{}", answer.body);
    assert_eq!(set_cookie(&answer, "hotline_session"), None);
    server.wait_for_log("authentication failed address=::1");

    let answer = log_in(&server, OWNER_PASSWORD);
    assert_eq!(answer.status, 303, "{answer:?}");
    let cookie = answer
        .headers
        .iter()
        .find(|(n, v)| n == "set-cookie" && v.starts_with("hotline_session="))
        .map(|(_, v)| v.clone())
        .unwrap();
    for attribute in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    let owner = Owner::log_in(&server);
    let overview = owner.get(&server, "/");
    assert_eq!(overview.status, 200, "{overview:?}");
    assert!(overview.body.contains("phones online"), "{}", overview.body);

    let answer = owner.post(&server, "/", "/logout", "");
    assert_eq!(
        (answer.status, answer.header("location")),
        (303, Some("/login"))
    );
    assert_eq!(owner.get(&server, "/").status, 303, "logged out");
}

#[test]
fn login_without_its_csrf_token_is_refused() {
    let server = server_with_owner("");
    let body = format!("password={}", OWNER_PASSWORD.replace(' ', "+"));
    let answer = request(&server, "POST", "/login", &[], &body);
    assert_eq!(answer.status, 403, "{answer:?}");
    let answer = request(
        &server,
        "POST",
        "/login",
        &["Cookie: hotline_login=abc"],
        &body,
    );
    assert_eq!(answer.status, 403, "{answer:?}");
}

#[test]
fn a_form_without_the_csrf_token_gets_403() {
    let server = server_with_owner("");
    let owner = Owner::log_in(&server);
    for (path, fields) in [
        ("/extensions", "action=add&extension=1000&name=Eve"),
        (
            "/extensions",
            "csrf=wrong&action=add&extension=1000&name=Eve",
        ),
        ("/security", "scope=::1"),
        ("/logout", ""),
    ] {
        let answer = owner.post_without_csrf(&server, path, fields);
        assert_eq!(answer.status, 403, "{path}: {answer:?}");
    }
    let output = server.hotline(&["user", "list"]);
    assert!(String::from_utf8_lossy(&output.stdout).contains("No extensions"));
    assert_eq!(owner.get(&server, "/").status, 200, "still logged in");
}

#[test]
fn a_password_change_ends_every_session() {
    let server = server_with_owner("");
    let owner = Owner::log_in(&server);
    assert_eq!(owner.get(&server, "/phones").status, 200);
    let output = server.owner_passwd("another long password");
    assert!(output.status.success(), "{output:?}");
    let answer = owner.get(&server, "/phones");
    assert_eq!(
        (answer.status, answer.header("location")),
        (303, Some("/login"))
    );
    assert_eq!(log_in(&server, OWNER_PASSWORD).status, 403);
    assert_eq!(log_in(&server, "another long password").status, 303);
}

#[test]
fn ten_wrong_passwords_ban_the_source() {
    let server =
        server_with_owner("[bans]\nfailures = 10\n[log]\nlevel = \"info,hotline::net=debug\"\n");
    for attempt in 0..10 {
        let answer = log_in(&server, &format!("wrong password {attempt}"));
        assert_eq!(answer.status, 403, "{answer:?}");
    }
    let line = server.wait_for_log(" banned address=::1 ");
    assert!(
        line.contains("transport=https") && line.ends_with("failures=10"),
        "{line}"
    );
    assert_eq!(
        exchange(&server, b"GET /login HTTP/1.1\r\nHost: x\r\n\r\n"),
        ""
    );
    server.wait_for_log("bans saved");
    let output = server.hotline(&["ban", "list"]);
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("::1/128"),
        "{output:?}"
    );
}

#[test]
fn a_sip_ban_shows_on_the_security_page_and_is_lifted_there() {
    in_network_namespace(&["2001:db8::66"], || {
        let server = server_with_owner("[bans]\nfailures = 3\n");
        let password = server.user_add("1000", "Alice");
        let mut mallory = Client::connect_udp_from(&server, "2001:db8::66".parse().unwrap());
        for _ in 0..3 {
            let refused = mallory.register("1000", WRONG, Algorithm::Md5, "");
            assert_eq!(refused.status(), Some(403), "{refused:?}");
        }
        server.wait_for_log(" banned address=2001:db8::66 ");
        let owner = Owner::log_in(&server);
        let security = owner.get(&server, "/security");
        assert!(
            security.body.contains("2001:db8::66/128"),
            "{}",
            security.body
        );
        let answer = owner.post(
            &server,
            "/security",
            "/security",
            "scope=2001:db8::66%2F128",
        );
        assert_eq!(
            (answer.status, answer.header("location")),
            (303, Some("/security"))
        );
        server.wait_for_log("ban lifted scope=2001:db8::66/128");
        let security = owner.get(&server, "/security");
        assert!(
            security.body.contains("No source is banned."),
            "{}",
            security.body
        );
        let contact = format!("Contact: {}\r\n", mallory.contact("1000"));
        let ok = mallory.register("1000", &password, Algorithm::Md5, &contact);
        assert_eq!(ok.status(), Some(200), "{ok:?}");
        let phones = owner.get(&server, "/phones");
        assert!(phones.body.contains("[2001:db8::66]:"), "{}", phones.body);
    });
}

#[test]
fn extensions_are_added_renamed_and_removed_with_the_password_shown_once() {
    let server = server_with_owner("");
    let owner = Owner::log_in(&server);
    let answer = owner.post(
        &server,
        "/extensions",
        "/extensions",
        "action=add&extension=1000&name=Alice",
    );
    assert_eq!(answer.status, 200, "{answer:?}");
    let start = answer.body.find("class=\"secret\">").expect("the password") + 15;
    let password = &answer.body[start..start + 40];
    assert!(password.bytes().all(|b| b.is_ascii_digit()), "{password}");
    let page = owner.get(&server, "/extensions");
    assert!(
        page.body.contains("Alice") && !page.body.contains(password),
        "{}",
        page.body
    );

    let answer = owner.post(
        &server,
        "/extensions",
        "/extensions",
        "action=rename&extension=1000&name=Alicia",
    );
    assert!(
        answer.body.contains("is now named Alicia"),
        "{}",
        answer.body
    );
    let output = server.hotline(&["user", "list"]);
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("Alicia"),
        "{output:?}"
    );

    let answer = owner.post(
        &server,
        "/extensions",
        "/extensions",
        "action=add&extension=1000&name=Bob",
    );
    assert!(answer.body.contains("already exists"), "{}", answer.body);
    let answer = owner.post(
        &server,
        "/extensions",
        "/extensions",
        "action=remove&extension=1000",
    );
    assert!(
        answer.body.contains("Extension 1000 is removed."),
        "{}",
        answer.body
    );
}

#[test]
fn hostile_names_are_escaped_on_every_page() {
    let server = server_with_owner("");
    let hostile = "<script>alert(1)</script>\"'&";
    let password = server.user_add("1000", hostile);
    let mut phone = Client::connect(&server, common::Transport::Udp);
    let headers = format!(
        "Contact: {}\r\nUser-Agent: {hostile}\r\n",
        phone.contact("1000")
    );
    let ok = phone.register("1000", &password, Algorithm::Md5, &headers);
    assert_eq!(ok.status(), Some(200), "{ok:?}");
    let owner = Owner::log_in(&server);
    for path in ["/", "/phones", "/calls", "/extensions", "/security"] {
        let page = owner.get(&server, path);
        assert_eq!(page.status, 200, "{path}");
        assert!(!page.body.contains("<script>"), "{path}: {}", page.body);
    }
    let page = owner.get(&server, "/extensions");
    assert!(
        page.body
            .contains("&lt;script&gt;alert(1)&lt;/script&gt;&quot;&#39;&amp;"),
        "{}",
        page.body
    );
}

/// The `/p/<token>` path of the link in a page or in `hotline user add`'s output.
fn link_path(text: &str) -> String {
    let start = text.find("/p/").expect("a link");
    text[start..start + 3 + 43].to_owned()
}

#[test]
fn provisioning_links_are_made_and_revoked_from_the_extensions_page_and_shown_once() {
    let server = server_with_owner("");
    let hostile = "<script>alert(1)</script>\"'&";
    let output = server.hotline(&["user", "add", "1000", "--name", hostile]);
    assert!(output.status.success(), "{output:?}");
    let first = link_path(&String::from_utf8_lossy(&output.stdout));
    let settings = |path: &str| request(&server, "GET", &format!("{path}/settings.txt"), &[], "");
    assert_eq!(settings(&first).status, 200);
    let owner = Owner::log_in(&server);
    let page = owner.get(&server, "/extensions");
    assert!(page.body.contains("active"), "{}", page.body);

    // Without the CSRF token: refused, and the link stays.
    let answer = owner.post_without_csrf(&server, "/extensions", "action=link&extension=1000");
    assert_eq!(answer.status, 403);
    assert_eq!(settings(&first).status, 200);

    let answer = owner.post(
        &server,
        "/extensions",
        "/extensions",
        "action=link&extension=1000",
    );
    assert_eq!(answer.status, 200, "{answer:?}");
    assert!(!answer.body.contains("<script>"), "{}", answer.body);
    assert!(answer.body.contains("&lt;script&gt;"), "{}", answer.body);
    let second = link_path(&answer.body);
    assert!(
        answer
            .body
            .contains("<div class=\"qr\"><svg xmlns=\"http://www.w3.org/2000/svg\""),
        "{}",
        answer.body
    );
    assert_eq!(settings(&second).status, 200, "the new link works");
    assert_eq!(settings(&first).status, 404, "the old link is ended");
    let page = owner.get(&server, "/extensions");
    assert!(
        !page.body.contains(&second[3..]),
        "shown once: {}",
        page.body
    );

    let answer = owner.post(
        &server,
        "/extensions",
        "/extensions",
        "action=revoke&extension=1000",
    );
    assert!(
        answer.body.contains("link of extension 1000 is ended"),
        "{}",
        answer.body
    );
    assert!(answer.body.contains("Make a link"), "{}", answer.body);
    assert_eq!(settings(&second).status, 404, "a revoked link");
}

/// The network layer's own security events (here connections refused at the limit per address)
/// are listed with the core's on the Security page.
#[test]
fn connection_limits_reached_show_on_the_security_page() {
    in_network_namespace(&["2001:db8::77"], || {
        let server = server_with_owner(
            "[limits]\nmax_connections_per_address = 2\n\
             [listen]\nudp = [\"[::]:0\"]\ntcp = [\"[::]:0\"]\ntls = [\"[::]:0\"]\n",
        );
        let source = "2001:db8::77".parse().unwrap();
        let _held: Vec<Client> = (0..2)
            .map(|_| Client::connect_from(&server, common::Transport::Tcp, source))
            .collect();
        // Two refusals in a window pass as bad luck; the third makes the address an offender.
        for _ in 0..3 {
            Client::connect_from(&server, common::Transport::Tcp, source).expect_closed();
        }
        let logged = server.wait_for_log("connection limit reached address=2001:db8::77 ");
        assert!(logged.contains("hotline::security"), "{logged}");
        let owner = Owner::log_in(&server);
        let security = owner.get(&server, "/security");
        assert!(
            security
                .body
                .contains("<td>2001:db8::77</td><td>connection limit reached</td>"),
            "{}",
            security.body
        );
    });
}
