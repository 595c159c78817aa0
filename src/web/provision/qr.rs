//! A provisioning link as a QR code on the terminal, for a phone's camera.

use qrcode::render::unicode::Dense1x2;
use qrcode::{EcLevel, QrCode};

/// `text` as a QR code in Unicode half blocks (two modules per character cell), dark modules
/// on a light background with the quiet zone the standard asks for; `None` if it is too long
/// for a QR code.
pub fn render(text: &str) -> Option<String> {
    let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::L).ok()?;
    Some(
        code.render::<Dense1x2>()
            .dark_color(Dense1x2::Light)
            .light_color(Dense1x2::Dark)
            .quiet_zone(true)
            .build(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_fits_a_terminal() {
        let url = format!("https://hotline.example.org/p/{}", "A".repeat(43));
        let code = render(&url).unwrap();
        let width = code.lines().map(|l| l.chars().count()).max().unwrap();
        assert!(width <= 78, "{width}\n{code}");
        assert!(code.lines().all(|l| l.chars().count() == width));
        assert!(code.contains('▀') || code.contains('▄'));
    }
}
