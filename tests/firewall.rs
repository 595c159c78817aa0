//! The appliance's firewall, `config/nftables.conf`, loaded by nft in a network namespace of the
//! test's own with the drop-in `hotline setup` writes. A reload, as setup makes after it writes
//! a drop-in, must keep other tables (Fail2Ban's bans) and must not repeat its own rules.

mod common;

use common::netns::Netns;
use hotline::config::Config;
use hotline::setup::firewall;

fn nft(netns: &Netns, args: &[&str]) -> String {
    let output = netns
        .command("nft")
        .args(args)
        .output()
        .expect("run nft (apt-get install nftables)");
    assert!(output.status.success(), "nft {args:?}: {output:?}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn a_reload_keeps_fail2ban_bans_and_the_drop_ins() {
    let netns = Netns::new();
    let dir = tempfile::tempdir().unwrap();
    let drop_ins = dir.path().join("nftables.d");
    let config = Config::parse("[web]\nenabled = true\nhttps = [\"[::]:443\"]\n").unwrap();
    assert!(firewall::write_web(&drop_ins, &config).unwrap());
    let ruleset = include_str!("../config/nftables.conf")
        .replace("/etc/nftables.d", drop_ins.to_str().unwrap());
    let conf = dir.path().join("nftables.conf");
    std::fs::write(&conf, ruleset).unwrap();
    let conf = conf.to_str().unwrap();

    nft(&netns, &["-f", conf]);
    nft(&netns, &["add", "table", "inet", "f2b-table"]);
    let set = "{ type ipv6_addr; }";
    nft(
        &netns,
        &["add", "set", "inet", "f2b-table", "addr-set-hotline", set],
    );
    let banned = "{ 2001:db8::66 }";
    nft(
        &netns,
        &[
            "add",
            "element",
            "inet",
            "f2b-table",
            "addr-set-hotline",
            banned,
        ],
    );
    nft(&netns, &["-f", conf]);
    nft(&netns, &["-f", conf]);

    let listed = nft(&netns, &["list", "ruleset"]);
    assert!(listed.contains("2001:db8::66"), "{listed}");
    assert_eq!(
        listed.matches("udp dport 5060 accept").count(),
        1,
        "{listed}"
    );
    assert_eq!(
        listed.matches("tcp dport 443 accept").count(),
        1,
        "{listed}"
    );
}
