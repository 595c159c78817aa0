//! A provisioning link as a QR code for a phone's camera: on the terminal, and as SVG in the
//! owner's pages.

use qrcode::render::svg;
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

/// `text` as a QR code in an SVG element for inline use in HTML (no XML declaration), one unit
/// a module with the quiet zone, to be sized by the style sheet; `None` if it is too long.
pub fn svg(text: &str) -> Option<String> {
    let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::L).ok()?;
    let image = code
        .render::<svg::Color<'_>>()
        .module_dimensions(1, 1)
        .quiet_zone(true)
        .build();
    let start = image.find("<svg")?;
    Some(image[start..].to_owned())
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

    #[test]
    fn a_link_becomes_inline_svg() {
        let url = format!("https://hotline.example.org/p/{}", "A".repeat(43));
        let image = svg(&url).unwrap();
        assert!(
            image.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""),
            "{image}"
        );
        assert!(image.ends_with("</svg>"));
        // Version 4 at level L: 33 modules and a quiet zone of 4 on each side.
        assert!(image.contains("viewBox=\"0 0 41 41\""), "{image}");
        assert!(
            !image.contains("style="),
            "the Content-Security-Policy forbids inline style"
        );
        assert!(svg(&"x".repeat(8000)).is_none());
    }
}
