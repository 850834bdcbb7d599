//! The embed snippet a person pastes into a blog: an iframe of the embed view with a size that
//! works without script, and (height "fits") the few lines of script that let the host page
//! follow the height the embed posts (`{salient: "height", height}`).

/// How the iframe is sized and themed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EmbedOptions {
    /// The host page's column (`width:100%`), else a fixed width in pixels.
    pub full_width: bool,
    /// The iframe follows the embed's height (script on the host page); else fixed.
    pub fits: bool,
    /// `None`: the reader's light or dark preference; else `light` or `dark`.
    pub theme: Option<&'static str>,
}

impl Default for EmbedOptions {
    fn default() -> Self {
        Self { full_width: true, fits: true, theme: None }
    }
}

/// Listens for the embed's height and sizes the iframe that sent it. Plain ES5, no quotes that
/// HTML would need escaped inside `<script>`.
const HEIGHT_SCRIPT: &str = "<script>addEventListener(\"message\",function(e){var d=e.data;\
if(d&&d.salient===\"height\"&&d.height>0)document.querySelectorAll(\"iframe\").forEach(function(f){\
if(f.contentWindow===e.source)f.style.height=Math.ceil(d.height)+\"px\"})});</script>";

/// `src` (an embed link) with the theme asked for: `?theme=` before the fragment.
pub fn themed(src: &str, theme: Option<&str>) -> String {
    let Some(theme) = theme else { return src.to_string() };
    let (page, fragment) = src.split_at(src.find('#').unwrap_or(src.len()));
    let joint = if page.contains('?') { '&' } else { '?' };
    format!("{page}{joint}theme={theme}{fragment}")
}

/// The snippet for an embed link `src` (already escaped for an attribute), `height` pixels tall
/// until the embed says otherwise.
pub fn snippet(src: &str, width: u32, height: u32, options: EmbedOptions) -> String {
    let width_attr = if options.full_width { "100%".to_string() } else { width.to_string() };
    let style = if options.full_width { "width:100%;border:0" } else { "border:0" };
    let iframe = format!(
        "<iframe src=\"{src}\" width=\"{width_attr}\" height=\"{height}\" style=\"{style}\" \
         title=\"Salient: input attribution\" loading=\"lazy\"></iframe>"
    );
    match options.fits {
        true => format!("{iframe}\n{HEIGHT_SCRIPT}"),
        false => iframe,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_theme_goes_in_the_query_before_the_fragment() {
        assert_eq!(
            themed("https://x/embed.html#s=v1.A", Some("dark")),
            "https://x/embed.html?theme=dark#s=v1.A"
        );
        assert_eq!(
            themed("https://x/embed.html?editable#s=v1.A", Some("light")),
            "https://x/embed.html?editable&theme=light#s=v1.A"
        );
        assert_eq!(themed("https://x/embed.html#s=v1.A", None), "https://x/embed.html#s=v1.A");
    }

    #[test]
    fn a_fixed_snippet_is_one_iframe_and_a_fitting_one_adds_its_listener() {
        let fixed =
            snippet("S", 720, 300, EmbedOptions { full_width: false, fits: false, theme: None });
        assert_eq!(fixed, "<iframe src=\"S\" width=\"720\" height=\"300\" style=\"border:0\" title=\"Salient: input attribution\" loading=\"lazy\"></iframe>");
        let fits = snippet("S", 720, 300, EmbedOptions::default());
        assert!(fits.starts_with(
            "<iframe src=\"S\" width=\"100%\" height=\"300\" style=\"width:100%;border:0\""
        ));
        assert!(fits.ends_with("</script>") && fits.contains("salient===\"height\""));
    }
}
