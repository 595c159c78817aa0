//! This machine's IPv6 addresses, read from `/proc/net/if_inet6` (no libc or NSS: the appliance
//! binary is static), and what each means for phones that want to reach the server.

use std::fmt;
use std::net::Ipv6Addr;

/// `IFA_F_TEMPORARY`: a privacy address that changes every day or so.
const TEMPORARY: u32 = 0x01;
/// `IFA_F_DADFAILED`: another host holds the address.
const DAD_FAILED: u32 = 0x08;
/// `IFA_F_DEPRECATED`: the prefix is going away.
const DEPRECATED: u32 = 0x20;

/// One line of `/proc/net/if_inet6`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InterfaceAddress {
    pub address: Ipv6Addr,
    pub interface: String,
    pub flags: u32,
}

/// Who can reach an address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reach {
    /// Global unicast (2000::/3): anyone on the IPv6 internet, if the router lets them in.
    Global,
    /// Unique local (fc00::/7): hosts of this site only.
    UniqueLocal,
    /// Link-local (fe80::/10): this network segment only, and only with an interface name.
    LinkLocal,
    /// `::1`: this machine only.
    Loopback,
    /// Anything else (IPv4-mapped, multicast, reserved).
    Other,
}

impl InterfaceAddress {
    pub fn reach(&self) -> Reach {
        reach(&self.address)
    }

    /// Usable at all: not a duplicate of another host's address.
    pub fn usable(&self) -> bool {
        self.flags & DAD_FAILED == 0
    }

    /// Stays the same while the network does: not a privacy address, not being retired.
    pub fn stable(&self) -> bool {
        self.usable() && self.flags & (TEMPORARY | DEPRECATED) == 0
    }
}

impl fmt::Display for InterfaceAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.address, self.interface)
    }
}

pub fn reach(address: &Ipv6Addr) -> Reach {
    let first = address.segments()[0];
    if address.is_loopback() {
        Reach::Loopback
    } else if first & 0xffc0 == 0xfe80 {
        Reach::LinkLocal
    } else if first & 0xfe00 == 0xfc00 {
        Reach::UniqueLocal
    } else if first & 0xe000 == 0x2000 {
        Reach::Global
    } else {
        Reach::Other
    }
}

/// Parses the text of `/proc/net/if_inet6`: `<32 hex digits> <ifindex> <prefix length> <scope>
/// <flags> <name>` per line, numbers in hex. Lines that do not have that shape are skipped.
pub fn parse_if_inet6(text: &str) -> Vec<InterfaceAddress> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [hex, _index, _prefix, _scope, flags, interface] = fields[..] else {
                return None;
            };
            if hex.len() != 32 {
                return None;
            }
            let address = u128::from_str_radix(hex, 16).ok().map(Ipv6Addr::from)?;
            let flags = u32::from_str_radix(flags, 16).ok()?;
            Some(InterfaceAddress {
                address,
                interface: interface.to_owned(),
                flags,
            })
        })
        .collect()
}

/// The address to offer as the domain when the hostname is no DNS name: the first stable global
/// one.
pub fn stable_global(addresses: &[InterfaceAddress]) -> Option<Ipv6Addr> {
    addresses
        .iter()
        .find(|a| a.reach() == Reach::Global && a.stable())
        .map(|a| a.address)
}
