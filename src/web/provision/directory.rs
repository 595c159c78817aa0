//! Remote phone books, generated from the extensions on every request, so that they change as
//! soon as users are added, renamed or removed.

use std::fmt::Write as _;

use super::xml::escape;
use crate::core::user::User;

/// The phone book formats served under `directory/`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Directory {
    /// Yealink remote phone book (`YealinkIPPhoneDirectory`), Yealink SIP-T4x/T5x
    /// Administrator Guide, "Remote Phone Book".
    Yealink,
    /// Grandstream phone book XML (`AddressBook`), Grandstream "XML Phonebook" guide.
    Grandstream,
    /// Cisco IP Phone Services `CiscoIPPhoneDirectory`, Cisco "IP Phone Services Application
    /// Development Notes".
    Cisco,
    /// Snom `SnomIPPhoneDirectory`, Snom "XML Minibrowser" documentation.
    Snom,
    /// vCard 4.0 (RFC 6350) list, for Linphone's `contacts-vcard-list`.
    VCard,
}

impl Directory {
    /// The format of a file name under `directory/` (and Grandstream's `phonebook.xml`).
    pub fn from_file(name: &str) -> Option<Directory> {
        Some(match name {
            "yealink.xml" => Directory::Yealink,
            "grandstream.xml" | "phonebook.xml" => Directory::Grandstream,
            "cisco.xml" => Directory::Cisco,
            "snom.xml" => Directory::Snom,
            "contacts.vcf" => Directory::VCard,
            _ => return None,
        })
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Directory::VCard => "text/vcard; charset=utf-8",
            _ => "text/xml; charset=utf-8",
        }
    }

    /// The phone book of `users` for phones of the domain `server` (a URI host).
    pub fn render(self, users: &[User], server: &str) -> String {
        let name = |user: &User| match user.display_name.is_empty() {
            true => user.extension.to_string(),
            false => user.display_name.clone(),
        };
        let mut text = String::new();
        match self {
            Directory::Yealink | Directory::Cisco | Directory::Snom => {
                let root = match self {
                    Directory::Yealink => "YealinkIPPhoneDirectory",
                    Directory::Cisco => "CiscoIPPhoneDirectory",
                    _ => "SnomIPPhoneDirectory",
                };
                text.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
                let _ = writeln!(text, "<{root}>\n  <Title>hotline</Title>");
                for user in users {
                    let _ = writeln!(
                        text,
                        "  <DirectoryEntry>\n    <Name>{}</Name>\n    \
                         <Telephone>{}</Telephone>\n  </DirectoryEntry>",
                        escape(&name(user)),
                        user.extension
                    );
                }
                let _ = writeln!(text, "</{root}>");
            }
            Directory::Grandstream => {
                text.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<AddressBook>\n");
                for user in users {
                    let _ = writeln!(
                        text,
                        "  <Contact>\n    <FirstName>{}</FirstName>\n    <LastName></LastName>\n    \
                         <Phone>\n      <phonenumber>{}</phonenumber>\n      \
                         <accountindex>1</accountindex>\n    </Phone>\n  </Contact>",
                        escape(&name(user)),
                        user.extension
                    );
                }
                text.push_str("</AddressBook>\n");
            }
            Directory::VCard => {
                for user in users {
                    let _ = write!(
                        text,
                        "BEGIN:VCARD\r\nVERSION:4.0\r\nFN:{}\r\nIMPP:sip:{}@{server}\r\nEND:VCARD\r\n",
                        vcard_text(&name(user)),
                        user.extension
                    );
                }
            }
        }
        text
    }
}

/// RFC 6350 §3.4: backslash, comma, semicolon and line breaks escaped; other controls dropped.
fn vcard_text(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' | ',' | ';' => {
                escaped.push('\\');
                escaped.push(c);
            }
            '\n' => escaped.push_str("\\n"),
            c if c.is_control() => {}
            c => escaped.push(c),
        }
    }
    escaped
}
